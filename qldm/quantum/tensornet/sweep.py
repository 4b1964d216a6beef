"""Every output of a ring of transfer matrices in one left and one right sweep, with a hand-written backward.

Given per-token site matrices ``T_i^e`` (``e`` in ``{I, Z}``, see :mod:`qldm.quantum.tensornet.ring`), output j is the
ring trace ``Tr(T_0^{e_0} ... T_{n-1}^{e_{n-1}})`` of its Z mask. Every mask of the Q-FFN is a single site, a prefix
``[0, b]`` or a suffix ``[a, n-1]``, so with the left products ``L[k] = T_0 ... T_{k-1}`` and the right products
``R[k] = T_k ... T_{n-1}`` (both readouts at once, ``L[0] = R[n] = 1``) every output is one close:

    single a:         Tr(L[a]^I T_a^Z R[a+1]^I)
    prefix [0, b]:    Tr(L[b+1]^Z R[b+1]^I)
    suffix [a, n-1]:  Tr(L[a]^I R[a]^Z)

That is ``2 (n - 1)`` batched matrix products for all outputs, against a contraction per output and term. The backward
(:class:`RingSweep`) runs the same two sweeps in reverse from the closes' gradients, so the whole forward+backward is
about ``6 n`` batched products of ``D x D`` matrices plus two site-batched products with the weight tensors, with no
autograd graph over the sweep. Each step's matrices are laid out ``(tokens, branches, 2, D, D)`` so one ``matmul`` does
a step for every token, branch and readout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

__all__ = ["SweepPlan", "plan_sweep", "RingSweep", "ring_expectations", "sweep_flops"]


@dataclass(frozen=True)
class SweepPlan:
    """Closes grouped by kind: output columns and the site indices each close reads.

    Attributes:
        n: Sites.
        single: ``(columns, sites a)``: ``Tr(L[a]^I T_a^Z R[a+1]^I)``.
        prefix: ``(columns, ends b)``: ``Tr(L[b+1]^Z R[b+1]^I)``.
        suffix: ``(columns, starts a)``: ``Tr(L[a]^I R[a]^Z)``.
    """

    n: int
    single: tuple[tuple[int, ...], tuple[int, ...]]
    prefix: tuple[tuple[int, ...], tuple[int, ...]]
    suffix: tuple[tuple[int, ...], tuple[int, ...]]


def plan_sweep(masks: tuple[tuple[bool, ...], ...]) -> SweepPlan | None:
    """Classify every mask as a single site, a prefix or a suffix; ``None`` if one is none of these (or empty)."""
    n = len(masks[0]) if masks else 0
    kinds: dict[str, tuple[list[int], list[int]]] = {k: ([], []) for k in ("single", "prefix", "suffix")}
    for j, mask in enumerate(masks):
        on = [i for i, m in enumerate(mask) if m]
        if not on or on != list(range(on[0], on[-1] + 1)):
            return None
        kind, site = ("single", on[0]) if len(on) == 1 else ("prefix", on[-1]) if on[0] == 0 else ("suffix", on[0])
        if kind == "suffix" and on[-1] != n - 1:
            return None
        kinds[kind][0].append(j)
        kinds[kind][1].append(site)
    frozen = {k: (tuple(c), tuple(s)) for k, (c, s) in kinds.items()}
    return SweepPlan(n, frozen["single"], frozen["prefix"], frozen["suffix"])


def sweep_flops(plan: SweepPlan, bond: int, branches: int) -> float:
    """Real flops per token of one forward+backward (2 per multiply-add), from the operations the code runs.

    Forward: site matrices ``3 * 2 D^2`` multiply-adds per site and branch, two sweeps of ``n - 1`` products of two
    ``D x D`` matrices, closes. Backward: twice the sweeps (two products per step) and twice the site matrices.
    """
    d, n = bond, plan.n
    site = 3 * 2 * d * d * n
    sweeps = 2 * (n - 1) * 2 * d**3
    closes = len(plan.single[0]) * (d**3 + d * d) + (len(plan.prefix[0]) + len(plan.suffix[0])) * d * d
    return 2.0 * branches * (3 * site + 3 * sweeps + 3 * closes)


def _trace(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Tr(a b)`` over the last two dimensions."""
    return (a * b.transpose(-1, -2)).sum((-2, -1))


def _products(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left and right products ``(n + 1, B, br, 2, D, D)`` of site matrices ``t (n, B, br, 2, D, D)``."""
    n = t.shape[0]
    eye = torch.eye(t.shape[-1], dtype=t.dtype, device=t.device).expand(t.shape[1:])
    left, right = [eye, t[0]], [t[n - 1], eye]
    for i in range(1, n):
        left.append(left[-1] @ t[i])
        right.insert(0, t[n - 1 - i] @ right[0])
    return torch.stack(left), torch.stack(right)


def _closes(plan: SweepPlan, t, left, right) -> list[tuple[tuple[int, ...], torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per kind: columns, left factor ``(k, B, br, D, D)``, middle-times-right ``(k, B, br, D, D)``, middle or None."""
    out = []
    cols, sites = plan.single
    if cols:
        a = list(sites)
        out.append((cols, left[a, :, :, 0], t[a, :, :, 1], right[[s + 1 for s in a], :, :, 0]))
    cols, ends = plan.prefix
    if cols:
        b = [e + 1 for e in ends]
        out.append((cols, left[b, :, :, 1], None, right[b, :, :, 0]))
    cols, starts = plan.suffix
    if cols:
        out.append((cols, left[list(starts), :, :, 0], None, right[list(starts), :, :, 1]))
    return out


def _by_site(w: torch.Tensor) -> torch.Tensor:
    """``(br, n, 3, 2, D, D)`` -> ``(n, 3, br * 2 * D * D)``, the layout of one site-batched product."""
    return w.flatten(3).permute(1, 2, 0, 3).reshape(w.shape[1], 3, -1)


def _site_matrices(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded Pauli components ``v (n, B, 3)`` = (1, sin atan x, cos atan x) and ``T = v . W``."""
    r = torch.rsqrt(1 + x * x)  # (B, n): cos(atan x); sin(atan x) = x cos(atan x)
    v = torch.stack([torch.ones_like(r), x * r, r], -1).transpose(0, 1)  # (n, B, 3)
    n, batch = v.shape[:2]
    t = torch.bmm(v, _by_site(w))  # (n, B, br * 2 * D * D)
    return v, t.reshape(n, batch, w.shape[0], 2, w.shape[-1], w.shape[-1])


class RingSweep(torch.autograd.Function):
    """``(x (B, n), W (br, n, 3, 2, D, D)) -> (B, n_obs)`` ring expectations averaged over branches.

    The backward replays the two sweeps in reverse (the adjoints of ``L[k+1] = L[k] T_k`` and ``R[k] = T_k R[k+1]``),
    so it needs only the forward's products, saved, and no autograd graph over ``O(n)`` small operations.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, plan: SweepPlan) -> torch.Tensor:
        v, t = _site_matrices(x, w)
        left, right = _products(t)
        out = x.new_zeros((x.shape[0], w.shape[0], len(plan.single[0]) + len(plan.prefix[0]) + len(plan.suffix[0])))
        for cols, lf, mid, rt in _closes(plan, t, left, right):
            lm = lf if mid is None else lf @ mid
            out[:, :, list(cols)] = _trace(lm, rt).permute(1, 2, 0)
        ctx.save_for_backward(x, w, v, t, left, right)
        ctx.plan = plan
        return out.mean(1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, w, v, t, left, right = ctx.saved_tensors
        plan: SweepPlan = ctx.plan
        n, branches = plan.n, w.shape[0]
        g = (grad / branches)[:, None, :].expand(-1, branches, -1)  # (B, br, n_obs)
        g_left, g_right, g_t = torch.zeros_like(left), torch.zeros_like(right), torch.zeros_like(t)
        # closes: d Tr(A M C) / dA = (M C)^T, / dM = (C A)^T, / dC = (A M)^T
        cols, sites = plan.single
        if cols:
            a, a1 = list(sites), [s + 1 for s in sites]
            gc = g[:, :, list(cols)].permute(2, 0, 1)[..., None, None]  # (k, B, br, 1, 1)
            lf, mid, rt = left[a, :, :, 0], t[a, :, :, 1], right[a1, :, :, 0]
            g_left[a, :, :, 0] += gc * (mid @ rt).transpose(-1, -2)
            g_t[a, :, :, 1] += gc * (rt @ lf).transpose(-1, -2)
            g_right[a1, :, :, 0] += gc * (lf @ mid).transpose(-1, -2)
        for (cols, idx), le, re in ((plan.prefix, 1, 0), (plan.suffix, 0, 1)):
            if cols:
                k = [s + 1 for s in idx] if le == 1 else list(idx)
                gc = g[:, :, list(cols)].permute(2, 0, 1)[..., None, None]
                g_left[k, :, :, le] += gc * right[k, :, :, re].transpose(-1, -2)
                g_right[k, :, :, re] += gc * left[k, :, :, le].transpose(-1, -2)
        # sweeps in reverse: L[k+1] = L[k] T_k with L[0] = 1, R[k] = T_k R[k+1] with R[n] = 1
        for k in range(n - 1, 0, -1):  # g_left[k + 1] is complete: closes and step k + 1 have added to it
            g_t[k] += left[k].transpose(-1, -2) @ g_left[k + 1]
            g_left[k] += g_left[k + 1] @ t[k].transpose(-1, -2)
        g_t[0] += g_left[1]
        for k in range(n - 1):  # g_right[k] is complete: closes and step k - 1 have added to it
            g_t[k] += g_right[k] @ right[k + 1].transpose(-1, -2)
            g_right[k + 1] += t[k].transpose(-1, -2) @ g_right[k]
        g_t[n - 1] += g_right[n - 1]
        flat = g_t.flatten(2)  # (n, B, br * 2 * D * D)
        g_x = g_w = None
        if ctx.needs_input_grad[0]:
            g_v = torch.bmm(flat, _by_site(w).transpose(1, 2))  # (n, B, 3)
            r = torch.rsqrt(1 + x * x)  # d(x r)/dx = r^3, dr/dx = -x r^3
            g_x = r**3 * (g_v[:, :, 1].T - x * g_v[:, :, 2].T)  # (B, n)
        if ctx.needs_input_grad[1]:
            g_w = torch.bmm(v.transpose(1, 2), flat)  # (n, 3, br * 2 * D * D)
            g_w = g_w.reshape(n, 3, branches, *w.shape[3:]).permute(2, 0, 1, 3, 4, 5)
        return g_x, g_w, None


def _forward_plain(x: torch.Tensor, w: torch.Tensor, plan: SweepPlan) -> torch.Tensor:
    """The same forward in plain torch operations, for autograd (the reference for the hand-written backward)."""
    _, t = _site_matrices(x, w)
    left, right = _products(t)
    out: list[torch.Tensor | None] = [None] * (len(plan.single[0]) + len(plan.prefix[0]) + len(plan.suffix[0]))
    for cols, lf, mid, rt in _closes(plan, t, left, right):
        vals = _trace(lf if mid is None else lf @ mid, rt).mean(-1)  # (k, B)
        for j, col in enumerate(cols):
            out[col] = vals[j]
    return torch.stack(out, -1)


def ring_expectations(x: torch.Tensor, w: torch.Tensor, plan: SweepPlan, *, autograd: bool = False) -> torch.Tensor:
    """Ring expectations ``(B, n_obs)``, averaged over the global branches.

    Args:
        x: ``(B, n)`` raw features (each site encodes ``atan(x_i)``).
        w: ``(br, n, 3, 2, D, D)`` site tensors from :func:`qldm.quantum.tensornet.ring.site_tensors`.
        plan: The closes, from :func:`plan_sweep`.
        autograd: Differentiate plain torch operations instead of using :class:`RingSweep`'s backward (slower; the
            reference in tests).

    Returns:
        ``(B, n_obs)`` expectation values, differentiable in ``x`` and ``w``.
    """
    return _forward_plain(x, w, plan) if autograd else RingSweep.apply(x, w, plan)
