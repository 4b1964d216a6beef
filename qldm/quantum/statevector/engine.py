"""Exact batched statevector simulation in torch with adjoint differentiation: the plan engine.

The spec's Qiskit instructions are compiled (:mod:`qldm.quantum.compile`) into a plan
(:mod:`qldm.quantum.statevector.plan`): a product state from the single-wire gates that come first (the encoding, the
ancillas' Hadamards), gathers for constant permutation gates (the CNOT ring), and fused per-token matrices for
everything else, applied only to the control-is-1 slice of the state for controlled gates.

Gradients use adjoint differentiation (Jones & Gacon, arXiv:2009.02823): the forward pass keeps no graph; the backward
pass walks the steps in reverse, un-applying each unitary to the state ``psi`` and to the co-state
``lambda = sum_k g_k O_k psi``, and reads the gradient of each step matrix ``M`` from the reduced matrix
``G_ij = sum_rest conj(lambda_i) psi_j``. Memory is a few states per chunk of tokens, independent of depth. The step
matrices and prefix states are small per-token tensors built from the gate angles with ordinary autograd, so torch
carries ``atan`` encodings, trig-basis derivatives and weight broadcasting.
"""

from __future__ import annotations

import string

import torch
from torch.autograd.function import once_differentiable

from qldm.quantum.statevector.plan import CircuitPlan, MatStep
from qldm.quantum.statevector.readout import PauliReadout

__all__ = ["PlanEngine", "COMPLEX"]

COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_LETTERS = string.ascii_letters


class PlanEngine:
    """Runs a :class:`CircuitPlan` on batches of statevectors ``(R, 2**N)`` and differentiates it by adjoint."""

    def __init__(self, plan: CircuitPlan, readout: PauliReadout) -> None:
        self.plan, self.readout, self.n = plan, readout, plan.num_wires
        self._perms: dict = {}

    def expectations(
        self, angles: torch.Tensor, bits: torch.Tensor | None, cdtype: torch.dtype, *, cache: bool
    ) -> torch.Tensor:
        """Expectation values ``(R, n_obs)`` for gate angles ``(R, A)``, differentiable in ``angles``.

        Args:
            angles: Gate angles, one row per simulated state.
            bits: ``(R, a)`` ancilla on/off patterns for a branch plan, else ``None``.
            cdtype: Complex dtype of the amplitudes.
            cache: Keep the final states for the backward pass (else it recomputes the forward, bounded memory).
        """
        prefix, mats = self.plan.matrices(angles, bits, cdtype)  # (R|1, N, 2), per step (R|1, d, d) or None
        save = cache and torch.is_grad_enabled() and angles.requires_grad
        empty = prefix.new_zeros(0)  # placeholder for a permutation step (autograd.Function takes tensors only)
        return _Adjoint.apply(self, angles.shape[0], save, prefix, *[empty if m is None else m for m in mats])

    # ------------------------------------------------------------------ kernels
    def _perm(self, k: int, device: torch.device, cdtype: torch.dtype):
        key = (k, device, cdtype)
        if key not in self._perms:
            s = self.plan.steps[k]
            idx = torch.as_tensor(s.index, device=device)
            inv = torch.argsort(idx)
            ph = None if s.phase is None else torch.as_tensor(s.phase, dtype=cdtype, device=device)
            self._perms[key] = (idx, inv, ph)
        return self._perms[key]

    def _slice(self, state: torch.Tensor, step: MatStep) -> tuple[torch.Tensor, list[int]]:
        """View of the control-is-1 slice of ``state`` and the axis of each target in it (targets order)."""
        t = state.view((state.shape[0],) + (2,) * self.n)  # (R, 2, ..., 2), wire q on axis N - q
        for c in sorted(step.controls):  # highest axis first keeps lower axes valid
            t = t.select(self.n - c, 1)
        axes = [self.n - q - sum(c > q for c in step.controls) for q in step.targets]
        return t, axes

    def _apply(self, state: torch.Tensor, step: MatStep, m: torch.Tensor, adjoint: bool) -> None:
        """In place: ``state <- M state`` (or ``M^dagger``) on the step's targets, where all controls are 1."""
        if adjoint:
            m = m.conj().transpose(-1, -2)
        sub, axes = self._slice(state, step)
        if len(axes) == 1:
            x0, x1 = sub.select(axes[0], 0), sub.select(axes[0], 1)
            shape = (m.shape[0],) + (1,) * (x0.dim() - 1)
            m00, m01, m10, m11 = (m[:, i, j].reshape(shape) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
            y0 = m00 * x0 + m01 * x1
            x1.mul_(m11).add_(m10 * x0)
            x0.copy_(y0)
            return
        sub.copy_(torch.einsum(self._mat_equation(sub.dim(), axes, m.shape[0] > 1), self._split(m), sub))

    def _split(self, m: torch.Tensor) -> torch.Tensor:
        k = m.shape[-1].bit_length() - 1
        return m.reshape((m.shape[0],) + (2,) * (2 * k))  # (R|1, out bits high->low, in bits high->low)

    def _mat_equation(self, ndim: int, axes: list[int], batched: bool) -> str:
        k = len(axes)
        letters = list(_LETTERS[:ndim])
        outs, ins = _LETTERS[ndim : ndim + k], [letters[a] for a in reversed(axes)]
        res = letters.copy()
        for b, a in enumerate(axes):
            res[a] = outs[k - 1 - b]
        lead = letters[0] if batched else "Z"
        return f"{lead}{outs}{''.join(ins)},{''.join(letters)}->{''.join(res)}"

    def _reduced(self, psi: torch.Tensor, lam: torch.Tensor, step: MatStep, batched: bool) -> torch.Tensor:
        """``G[r, i, j] = sum_rest conj(lam[r, i, rest]) psi[r, j, rest]`` over the control slice: (R|1, d, d)."""
        p, axes = self._slice(psi, step)
        lm, _ = self._slice(lam, step)
        k, ndim = len(axes), p.dim()
        letters = list(_LETTERS[:ndim])
        outs = _LETTERS[ndim : ndim + k]
        lam_letters = letters.copy()
        for b, a in enumerate(axes):
            lam_letters[a] = outs[k - 1 - b]
        ins = "".join(letters[a] for a in reversed(axes))
        lead = letters[0] if batched else ""
        g = torch.einsum(f"{''.join(lam_letters)},{''.join(letters)}->{lead}{outs}{ins}", lm.conj(), p)
        return g.reshape(-1, 2**k, 2**k)

    # ------------------------------------------------------------------ passes
    def run(self, prefix: torch.Tensor, mats: list[torch.Tensor | None], rows: int) -> torch.Tensor:
        """Final states ``(rows, 2**N)`` from prefix states ``(R|1, N, 2)`` and step matrices."""
        psi = prefix[:, self.n - 1]  # (R|1, 2)  wire N-1 is the most significant
        for q in range(self.n - 2, -1, -1):
            psi = (psi[:, :, None] * prefix[:, q, None, :]).reshape(psi.shape[0], -1)  # (R|1, 2**(N-q))
        psi = psi.expand(rows, -1).contiguous()  # (R, 2**N)
        for k, (step, m) in enumerate(zip(self.plan.steps, mats)):
            if m is None:
                idx, _, ph = self._perm(k, psi.device, psi.dtype)
                psi = psi.index_select(1, idx)  # (R, 2**N)
                if ph is not None:
                    psi.mul_(ph)
            else:
                self._apply(psi, step, m, adjoint=False)
        return psi

    def adjoint(
        self,
        psi: torch.Tensor,
        grad_out: torch.Tensor,
        prefix: torch.Tensor,
        mats: list[torch.Tensor | None],
        needs: tuple[bool, ...],
    ) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """Gradients (torch's complex convention, ``2 dL/d conj(z)``) of the prefix and of every step matrix.

        ``psi`` (the final state) is consumed in place.
        """
        lam = self.readout.weighted_apply(psi, grad_out.to(psi.real.dtype))  # (R, 2**N)
        grads: list[torch.Tensor | None] = [None] * len(mats)
        for k in range(len(mats) - 1, -1, -1):
            step, m = self.plan.steps[k], mats[k]
            if m is None:
                _, inv, ph = self._perm(k, psi.device, psi.dtype)
                if ph is not None:
                    psi.mul_(ph.conj())
                    lam.mul_(ph.conj())
                psi, lam = psi.index_select(1, inv), lam.index_select(1, inv)
                continue
            self._apply(psi, step, m, adjoint=True)  # psi before the step
            if needs[1 + k]:
                grads[k] = 2 * self._reduced(psi, lam, step, batched=m.shape[0] > 1).conj()
            self._apply(lam, step, m, adjoint=True)  # lambda before the step
        gp = 2 * self._prefix_overlaps(lam, prefix.conj()) if needs[0] else None  # (R, N, 2)
        if gp is not None and prefix.shape[0] == 1:
            gp = gp.sum(0, keepdim=True)
        return gp, grads

    def _prefix_overlaps(self, lam: torch.Tensor, pc: torch.Tensor) -> torch.Tensor:
        """``u[r, q, i] = sum_rest lam[r, i at q, rest] prod_{p != q} pc[r, p, rest_p]``, by recursive halving."""
        out: list[torch.Tensor | None] = [None] * self.n

        def kron(lo: int, hi: int) -> torch.Tensor:  # (R|1, 2**(hi-lo)) product over wires [lo, hi)
            v = pc[:, hi - 1]
            for q in range(hi - 2, lo - 1, -1):
                v = (v[:, :, None] * pc[:, q, None, :]).reshape(v.shape[0], -1)
            return v

        def rec(t: torch.Tensor, lo: int, hi: int) -> None:  # t: (R, 2**(hi-lo)) over wires [lo, hi)
            if hi - lo == 1:
                out[lo] = t
                return
            mid = (lo + hi) // 2
            t3 = t.reshape(t.shape[0], 2 ** (hi - mid), 2 ** (mid - lo))  # (R, high wires, low wires)
            rec((kron(mid, hi)[:, None, :] @ t3)[:, 0], lo, mid)
            rec((t3 @ kron(lo, mid)[:, :, None])[..., 0], mid, hi)

        rec(lam, 0, self.n)
        return torch.stack(out, dim=1)  # (R, N, 2)


class _Adjoint(torch.autograd.Function):
    """``(prefix, *step matrices) -> (R, n_obs)`` expectation values, differentiated by the adjoint method."""

    @staticmethod
    def forward(ctx, engine: PlanEngine, rows: int, save: bool, prefix: torch.Tensor, *mats: torch.Tensor):
        mats_ = [None if m.numel() == 0 else m for m in mats]  # empty placeholders stand for permutations
        psi = engine.run(prefix, mats_, rows)  # (R, 2**N)
        ctx.engine, ctx.rows, ctx.final = engine, rows, (psi if save else None)
        ctx.save_for_backward(prefix, *mats)
        return engine.readout(psi)  # (R, n_obs)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        prefix, *mats = ctx.saved_tensors
        mats_ = [None if m.numel() == 0 else m for m in mats]
        psi = ctx.final if ctx.final is not None else ctx.engine.run(prefix, mats_, ctx.rows)
        ctx.final = None
        gp, gm = ctx.engine.adjoint(psi, grad_out, prefix, mats_, ctx.needs_input_grad[3:])
        return (None, None, None, gp, *gm)
