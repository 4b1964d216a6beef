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
autograd graph over the sweep. Tensors are laid out tokens last, ``(branches, readouts, D, D, tokens)`` per site, so
one product is ``D`` fused multiply-adds over whole ``(D, D, tokens)`` arrays, for every token, branch and readout,
and only the readout channels some output reads are carried through each sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

__all__ = ["SweepPlan", "plan_sweep", "RingSweep", "ring_expectations", "sweep_flops"]


@dataclass(frozen=True)
class Close:
    """Outputs ``cols`` read as ``Tr(L[left]^{le} (T_mid^Z) R[right]^{re})``, one entry per output."""

    cols: tuple[int, ...]
    left: tuple[int, ...]
    le: int  # readout channel: 0 = I, 1 = Z
    mid: tuple[int, ...] | None  # sites whose T^Z sits between (single-site masks), else None
    right: tuple[int, ...]
    re: int


@dataclass(frozen=True)
class SweepPlan:
    """The closes of every output, and which readout channels each sweep must carry.

    Attributes:
        n: Sites.
        closes: Groups of outputs with the same form (single site, prefix ``[0, b]``, suffix ``[a, n-1]``).
        left_ch: Channels ``(start, stop)`` of ``L[k]``, k >= 2, that some close reads (``L[0] = 1``, ``L[1] = T_0``
            are there for both); ``(0, 0)`` when none.
        right_ch: The same for ``R[k]``, k <= n - 2.
    """

    n: int
    closes: tuple[Close, ...]
    left_ch: tuple[int, int]
    right_ch: tuple[int, int]

    @property
    def n_obs(self) -> int:
        """Number of outputs."""
        return sum(len(c.cols) for c in self.closes)


def _channels(used: set[int]) -> tuple[int, int]:
    return (min(used), max(used) + 1) if used else (0, 0)


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
    closes = []
    cols, sites = kinds["single"]
    if cols:
        closes.append(Close(tuple(cols), tuple(sites), 0, tuple(sites), tuple(a + 1 for a in sites), 0))
    cols, ends = kinds["prefix"]
    if cols:
        closes.append(Close(tuple(cols), tuple(b + 1 for b in ends), 1, None, tuple(b + 1 for b in ends), 0))
    cols, starts = kinds["suffix"]
    if cols:
        closes.append(Close(tuple(cols), tuple(starts), 0, None, tuple(starts), 1))
    left = {c.le for c in closes if max(c.left) >= 2}
    right = {c.re for c in closes if min(c.right) <= n - 2}
    return SweepPlan(n, tuple(closes), _channels(left), _channels(right))


def sweep_flops(plan: SweepPlan, bond: int, branches: int) -> float:
    """Real flops per token of one forward+backward (2 per multiply-add), from the operations the code runs.

    Forward: site matrices (2 multiply-adds per entry), the sweeps' ``D x D`` products (``D^3`` each) over the
    channels they carry, the closes. Backward: two products per sweep step, three per single-site close, and the
    two site-batched products for the input and weight gradients.
    """
    d, n = bond, plan.n
    entries = n * 2 * d * d
    steps = max(n - 2, 0) * ((plan.left_ch[1] - plan.left_ch[0]) + (plan.right_ch[1] - plan.right_ch[0]))
    singles = sum(len(c.cols) for c in plan.closes if c.mid is not None)
    trace = plan.n_obs * d * d
    forward = 2 * entries + steps * d**3 + singles * d**3 + trace
    backward = 2 * steps * d**3 + 3 * singles * d**3 + 2 * trace + 4 * entries
    return 2.0 * branches * (forward + backward)


def _pick(stack: torch.Tensor, idx: tuple[int, ...], ch: int) -> torch.Tensor:
    """``stack[idx, :, ch]`` of a ``(k, br, 2, D, D, B)`` stack: a view when ``idx`` is a run of consecutive sites."""
    if list(idx) == list(range(idx[0], idx[0] + len(idx))):
        return stack[idx[0] : idx[0] + len(idx), :, ch]
    return stack[list(idx), :, ch]


def _add_at(stack: torch.Tensor, idx: tuple[int, ...], ch: int, value: torch.Tensor) -> None:
    """``stack[idx, :, ch] += value`` (``idx`` may repeat)."""
    if list(idx) == list(range(idx[0], idx[0] + len(idx))):
        stack[idx[0] : idx[0] + len(idx), :, ch].add_(value)  # add_ on the view: `+=` would copy it back
    else:
        stack[:, :, ch].index_add_(0, torch.tensor(idx, device=stack.device), value)


def _mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None, accumulate: bool = False) -> torch.Tensor:
    """Matrix product over dims ``(-3, -2)`` of tokens-last tensors ``(..., D, D, B)``, into ``out`` or added to it.

    Unrolled over the inner index: for D = 4, ``D`` fused multiply-adds over ``(D, D, B)`` arrays run several times
    faster on CPU than ``bmm`` on ``B`` separate 4 x 4 matrices, whose per-matrix overhead dominates.

    Raises:
        ValueError: If ``accumulate`` is set without ``out``.
    """
    if accumulate and out is None:
        raise ValueError("accumulate=True needs out")
    d = a.shape[-2]
    if d > 8:  # large enough for batched GEMM to pay
        prod = (a.movedim(-1, 0) @ b.movedim(-1, 0)).movedim(0, -1)
        return prod if out is None else out.add_(prod) if accumulate else out.copy_(prod)
    start = 0
    if not accumulate:
        out = torch.mul(a[..., :, 0:1, :], b[..., 0:1, :, :], out=out)
        start = 1
    for k in range(start, d):
        out.addcmul_(a[..., :, k : k + 1, :], b[..., k : k + 1, :, :])
    return out


def _tr(a: torch.Tensor) -> torch.Tensor:
    """Transpose of every matrix of a tokens-last tensor ``(..., D, D, B)`` (a view)."""
    return a.transpose(-3, -2)


def _trace(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Tr(a b)`` of tokens-last matrices: ``(..., D, D, B) -> (..., B)``."""
    return (a * _tr(b)).sum((-3, -2))


def _products(t: torch.Tensor, plan: SweepPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """Left and right products ``(n + 1, br, 2, D, D, B)`` of site matrices ``t (n, br, 2, D, D, B)``.

    Only the channels a close reads are carried past ``L[1]`` and ``R[n-1]``; the other entries stay unset.
    """
    n, d = t.shape[0], t.shape[-2]
    eye = torch.eye(d, dtype=t.dtype, device=t.device)[..., None]
    left, right = t.new_empty((n + 1, *t.shape[1:])), t.new_empty((n + 1, *t.shape[1:]))
    left[0], left[1], right[n], right[n - 1] = eye, t[0], eye, t[n - 1]
    lc, rc = slice(*plan.left_ch), slice(*plan.right_ch)
    for i in range(1, n):
        if lc.stop > lc.start:
            _mm(left[i][:, lc], t[i][:, lc], out=left[i + 1][:, lc])
        if rc.stop > rc.start:
            _mm(t[n - 1 - i][:, rc], right[n - i][:, rc], out=right[n - 1 - i][:, rc])
    return left, right


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


def _plain_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.movedim(-1, 0) @ b.movedim(-1, 0)).movedim(0, -1)


def _plain_products(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All channels of every product with out-of-place ``matmul`` (the autograd reference)."""
    n = t.shape[0]
    eye = torch.eye(t.shape[-2], dtype=t.dtype, device=t.device)[..., None].expand(t.shape[1:])
    left, right = [eye], [eye]
    for i in range(n):
        left.append(_plain_mm(left[-1], t[i]))
        right.insert(0, _plain_mm(t[n - 1 - i], right[0]))
    return torch.stack(left), torch.stack(right)


def _forward(x: torch.Tensor, w: torch.Tensor, plan: SweepPlan, plain: bool = False):
    """Site matrices, products and the ``(n_obs, B)`` outputs averaged over branches (``plain``: for autograd)."""
    v, t = _site_matrices(x, w)
    left, right = _plain_products(t) if plain else _products(t, plan)
    rows: list[torch.Tensor | None] = [None] * plan.n_obs
    for c in plan.closes:
        lf = _pick(left, c.left, c.le)  # (k, br, D, D, B)
        if c.mid is not None:
            lf = (_plain_mm if plain else _mm)(lf, _pick(t, c.mid, 1))
        vals = _trace(lf, _pick(right, c.right, c.re)).mean(1)  # (k, B)
        for j, col in enumerate(c.cols):
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
        g_t = torch.zeros_like(t)
        seeds: tuple[dict, dict] = ({}, {})  # gradients of L[k] and R[k] from the closes: k -> [(channel, value)]

        def seed(side: int, idx: tuple[int, ...], ch: int, value: torch.Tensor) -> None:
            for j, k in enumerate(idx):
                seeds[side].setdefault(k, []).append((ch, value[j]))

        # closes: d Tr(A M C) / dA = (M C)^T, / dM = (C A)^T, / dC = (A M)^T
        for c in plan.closes:
            gc = g[list(c.cols)]  # (k, 1, 1, 1, B)
            lf, rt = _pick(left, c.left, c.le), _pick(right, c.right, c.re)
            if c.mid is None:
                seed(0, c.left, c.le, gc * _tr(rt))
                seed(1, c.right, c.re, gc * _tr(lf))
                continue
            md = _pick(t, c.mid, 1)
            seed(0, c.left, c.le, gc * _tr(_mm(md, rt)))
            _add_at(g_t, c.mid, 1, gc * _tr(_mm(rt, lf)))
            seed(1, c.right, c.re, gc * _tr(_mm(lf, md)))
        # the sweeps in reverse, on the channels the forward carried: L[k] = L[k-1] T_{k-1}, R[k] = T_k R[k+1]
        lc, rc = slice(*plan.left_ch), slice(*plan.right_ch)
        shape = (branches, lc.stop - lc.start, *t.shape[-3:])
        gl = None  # gradient of L[k] on the carried channels, complete once the closes at k are added
        for k in range(n, 0, -1):
            for ch, val in seeds[0].get(k, []):
                if lc.start <= ch < lc.stop:
                    gl = t.new_zeros(shape) if gl is None else gl
                    gl[:, ch - lc.start].add_(val)
                else:  # only L[1] = T_0 is read outside the carried channels
                    g_t[0][:, ch].add_(val)
            if gl is None:
                continue
            if k == 1:
                g_t[0][:, lc].add_(gl)
                break
            _mm(_tr(left[k - 1][:, lc]), gl, out=g_t[k - 1][:, lc], accumulate=True)
            gl = _mm(gl, _tr(t[k - 1][:, lc]))
        shape = (branches, rc.stop - rc.start, *t.shape[-3:])
        gr = None
        for k in range(n):
            for ch, val in seeds[1].get(k, []):
                if rc.start <= ch < rc.stop:
                    gr = t.new_zeros(shape) if gr is None else gr
                    gr[:, ch - rc.start].add_(val)
                else:  # only R[n-1] = T_{n-1} is read outside the carried channels
                    g_t[n - 1][:, ch].add_(val)
            if gr is None:
                continue
            if k == n - 1:
                g_t[n - 1][:, rc].add_(gr)
                break
            _mm(gr, _tr(right[k + 1][:, rc]), out=g_t[k][:, rc], accumulate=True)
            gr = _mm(_tr(t[k][:, rc]), gr)
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


def ring_expectations(x: torch.Tensor, w: torch.Tensor, plan: SweepPlan, *, autograd: bool = False) -> torch.Tensor:
    """Ring expectations ``(B, n_obs)``, averaged over the global branches.

    Args:
        x: ``(B, n)`` raw features (each site encodes ``atan(x_i)``).
        w: ``(br, n, 3, 2, D, D)`` site tensors from :func:`qldm.quantum.tensornet.ring.site_tensors`.
        plan: The closes, from :func:`plan_sweep`.
        autograd: Differentiate a plain forward (out-of-place ``matmul`` products over every channel) instead of
            using :class:`RingSweep`'s backward (slower; the reference it is tested against).

    Returns:
        ``(B, n_obs)`` expectation values, differentiable in ``x`` and ``w``.
    """
    return _forward(x, w, plan, plain=True)[-1].T if autograd else RingSweep.apply(x, w, plan)
