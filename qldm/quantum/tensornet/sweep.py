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

    @property
    def n_obs(self) -> int:
        """Number of outputs."""
        return len(self.single[0]) + len(self.prefix[0]) + len(self.suffix[0])


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


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Matrix product over dims ``(-3, -2)`` of tokens-last tensors ``(..., D, D, B)``.

    Unrolled over the inner index: for D = 4, ``D`` fused multiply-adds over ``(D, D, B)`` vectors run about 8x faster
    on CPU than ``bmm`` on ``B`` separate 4x4 matrices (measured: 0.23 ms against 2.0 ms at B = 8,192).
    """
    d = a.shape[-2]
    if d > 8:  # large enough for batched GEMM to pay
        return (a.movedim(-1, 0) @ b.movedim(-1, 0)).movedim(0, -1)
    out = a[..., :, 0:1, :] * b[..., 0:1, :, :]
    for k in range(1, d):
        out.addcmul_(a[..., :, k : k + 1, :], b[..., k : k + 1, :, :])
    return out


def _tr(a: torch.Tensor) -> torch.Tensor:
    """Transpose of every matrix of a tokens-last tensor ``(..., D, D, B)`` (a view)."""
    return a.transpose(-3, -2)


def _trace(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Tr(a b)`` of tokens-last matrices: ``(..., D, D, B) -> (..., B)``."""
    return (a * _tr(b)).sum((-3, -2))


def _products(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left and right products ``(n + 1, br, 2, D, D, B)`` of site matrices ``t (n, br, 2, D, D, B)``."""
    n, d = t.shape[0], t.shape[-2]
    eye = torch.eye(d, dtype=t.dtype, device=t.device)[..., None].expand(t.shape[1:])
    left, right = [eye, t[0]], [t[n - 1], eye]
    for i in range(1, n):
        left.append(_mm(left[-1], t[i]))
        right.insert(0, _mm(t[n - 1 - i], right[0]))
    return torch.stack(left), torch.stack(right)


def _close_sites(plan: SweepPlan) -> list[tuple[tuple[int, ...], list[int], int, list[int] | None, list[int], int]]:
    """Per kind: columns, left index and readout, middle sites (or None), right index and readout."""
    out = []
    cols, sites = plan.single
    if cols:
        out.append((cols, list(sites), 0, list(sites), [s + 1 for s in sites], 0))
    cols, ends = plan.prefix
    if cols:
        out.append((cols, [e + 1 for e in ends], 1, None, [e + 1 for e in ends], 0))
    cols, starts = plan.suffix
    if cols:
        out.append((cols, list(starts), 0, None, list(starts), 1))
    return out


def _by_site(w: torch.Tensor) -> torch.Tensor:
    """``(br, n, 3, 2, D, D)`` -> ``(n, br * 2 * D * D, 3)``, the layout of the site-batched products."""
    return w.permute(1, 0, 3, 4, 5, 2).reshape(w.shape[1], -1, 3)


def _site_matrices(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded components ``v (n, 3, B)`` = (1, sin atan x, cos atan x) and ``T (n, br, 2, D, D, B) = W . v``."""
    xt = x.T  # (n, B)
    r = torch.rsqrt(1 + xt * xt)  # cos(atan x); sin(atan x) = x cos(atan x)
    v = torch.stack([torch.ones_like(r), xt * r, r], 1)  # (n, 3, B)
    ws = _by_site(w)  # (n, M, 3)
    t = torch.baddbmm(ws[:, :, :1], ws[:, :, 1:], v[:, 1:])  # (n, M, B): W_I + sin W_X + cos W_Z, one GEMM per site
    return v, t.reshape(w.shape[1], w.shape[0], 2, w.shape[-1], w.shape[-1], x.shape[0])


def _forward(x: torch.Tensor, w: torch.Tensor, plan: SweepPlan):
    """Site matrices, products and the ``(n_obs, B)`` outputs averaged over branches."""
    v, t = _site_matrices(x, w)
    left, right = _products(t)
    rows: list[torch.Tensor | None] = [None] * plan.n_obs
    for cols, li, le, mid, ri, re in _close_sites(plan):
        lf = left[li, :, le]  # (k, br, D, D, B)
        vals = _trace(lf if mid is None else _mm(lf, t[mid, :, 1]), right[ri, :, re]).mean(1)  # (k, B)
        for j, col in enumerate(cols):
            rows[col] = vals[j]
    return v, t, left, right, torch.stack(rows)


class RingSweep(torch.autograd.Function):
    """``(x (B, n), W (br, n, 3, 2, D, D)) -> (B, n_obs)`` ring expectations averaged over branches.

    The backward replays the two sweeps in reverse (the adjoints of ``L[k+1] = L[k] T_k`` and ``R[k] = T_k R[k+1]``),
    so it needs only the forward's products, saved, and no autograd graph over ``O(n)`` small operations.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, plan: SweepPlan) -> torch.Tensor:
        v, t, left, right, out = _forward(x, w, plan)
        ctx.save_for_backward(x, w, v, t, left, right)
        ctx.plan = plan
        return out.T

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, w, v, t, left, right = ctx.saved_tensors
        plan: SweepPlan = ctx.plan
        n, branches = plan.n, w.shape[0]
        g = (grad.T / branches)[:, None, None, None, :]  # (n_obs, br=1, 1, 1, B)
        g_left, g_right, g_t = torch.zeros_like(left), torch.zeros_like(right), torch.zeros_like(t)
        # closes: d Tr(A M C) / dA = (M C)^T, / dM = (C A)^T, / dC = (A M)^T
        for cols, li, le, mid, ri, re in _close_sites(plan):
            gc = g[list(cols)]  # (k, 1, 1, 1, B)
            lf, rt = left[li, :, le], right[ri, :, re]
            if mid is None:
                g_left[:, :, le].index_add_(0, _ix(li, x), gc * _tr(rt))
                g_right[:, :, re].index_add_(0, _ix(ri, x), gc * _tr(lf))
                continue
            md = t[mid, :, 1]
            g_left[:, :, le].index_add_(0, _ix(li, x), gc * _tr(_mm(md, rt)))
            g_t[:, :, 1].index_add_(0, _ix(mid, x), gc * _tr(_mm(rt, lf)))
            g_right[:, :, re].index_add_(0, _ix(ri, x), gc * _tr(_mm(lf, md)))
        # sweeps in reverse: L[k+1] = L[k] T_k with L[0] = 1, R[k] = T_k R[k+1] with R[n] = 1
        for k in range(n - 1, 0, -1):  # g_left[k + 1] is complete: closes and step k + 1 have added to it
            g_t[k] += _mm(_tr(left[k]), g_left[k + 1])
            g_left[k] += _mm(g_left[k + 1], _tr(t[k]))
        g_t[0] += g_left[1]
        for k in range(n - 1):  # g_right[k] is complete: closes and step k - 1 have added to it
            g_t[k] += _mm(g_right[k], _tr(right[k + 1]))
            g_right[k + 1] += _mm(_tr(t[k]), g_right[k])
        g_t[n - 1] += g_right[n - 1]
        flat = g_t.reshape(n, -1, x.shape[0])  # (n, M, B)
        g_x = g_w = None
        if ctx.needs_input_grad[0]:
            g_v = torch.bmm(_by_site(w)[:, :, 1:].transpose(1, 2), flat)  # (n, 2, B): sin and cos components
            xt = x.T
            r = torch.rsqrt(1 + xt * xt)  # d(x r)/dx = r^3, dr/dx = -x r^3
            g_x = (r**3 * (g_v[:, 0] - xt * g_v[:, 1])).T  # (B, n)
        if ctx.needs_input_grad[1]:
            g_w = torch.bmm(flat, v.transpose(1, 2))  # (n, M, 3)
            g_w = g_w.reshape(n, branches, 2, *w.shape[-2:], 3).permute(1, 0, 5, 2, 3, 4)
        return g_x, g_w, None


def _ix(idx: list[int], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(idx, dtype=torch.long, device=like.device)


def ring_expectations(x: torch.Tensor, w: torch.Tensor, plan: SweepPlan, *, autograd: bool = False) -> torch.Tensor:
    """Ring expectations ``(B, n_obs)``, averaged over the global branches.

    Args:
        x: ``(B, n)`` raw features (each site encodes ``atan(x_i)``).
        w: ``(br, n, 3, 2, D, D)`` site tensors from :func:`qldm.quantum.tensornet.ring.site_tensors`.
        plan: The closes, from :func:`plan_sweep`.
        autograd: Differentiate the forward's plain torch operations instead of using :class:`RingSweep`'s
            backward (slower; the reference it is tested against).

    Returns:
        ``(B, n_obs)`` expectation values, differentiable in ``x`` and ``w``.
    """
    return _forward(x, w, plan)[-1].T if autograd else RingSweep.apply(x, w, plan)
