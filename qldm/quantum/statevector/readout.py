"""Expectation values of ``SparsePauliOp`` observables on batched statevectors (Qiskit little-endian).

Every Pauli string ``P`` maps a basis state to one basis state: ``P|i> = phase(i) |i XOR x>``, where ``x`` is its X/Y
bit mask. Terms are therefore grouped by ``x``: per group, ``(O_k psi)[j] = E_x[j, k] * psi[j XOR x]`` with a
precomputed table ``E_x`` of coefficients times phases (taken from Qiskit's own sparse Pauli matrices). Diagonal
observables (the Q-FFN's ``Z_i``) are the single group ``x = 0`` and reduce to ``|psi|^2 @ E_0``.
"""

from __future__ import annotations

import numpy as np
import torch
from qiskit.quantum_info import SparsePauliOp

__all__ = ["PauliReadout"]


class PauliReadout:
    """Precomputed readout of ``observables`` on ``num_wires``-qubit states.

    Args:
        observables: One ``SparsePauliOp`` per output, each on ``num_wires`` qubits (Hermitian).
        num_wires: State width N.

    Raises:
        ValueError: If an observable's width differs from ``num_wires``.
    """

    def __init__(self, observables: tuple[SparsePauliOp, ...], num_wires: int) -> None:
        self.num_wires = num_wires
        self.num_outputs = len(observables)
        idx = np.arange(2**num_wires)
        tables: dict[int, np.ndarray] = {}
        for k, op in enumerate(observables):
            if op.num_qubits != num_wires:
                raise ValueError(f"observable on {op.num_qubits} qubits, state has {num_wires} wires")
            for pauli, coeff in zip(op.paulis, op.coeffs):
                xmask = int(sum(1 << int(q) for q in np.flatnonzero(pauli.x)))
                # Qiskit's sparse matrix has one entry per column: P|i> = data[i] |i ^ x>
                mat = pauli.to_matrix(sparse=True).tocsc()
                data = np.asarray(mat.data)[np.argsort(mat.indices[mat.indptr[:-1]] ^ xmask)]
                table = tables.setdefault(xmask, np.zeros((2**num_wires, len(observables)), dtype=complex))
                table[:, k] += coeff * data[idx ^ xmask]  # E_x[j, k] += c * phase(j ^ x)
        self.groups = [(x, idx ^ x, t.real.copy() if np.allclose(t.imag, 0) else t) for x, t in sorted(tables.items())]
        self.diagonal = all(x == 0 for x, _, _ in self.groups)
        self._cache: dict = {}

    def _tensors(self, device: torch.device, cdtype: torch.dtype) -> list:
        key = (device, cdtype)
        if key not in self._cache:
            rdtype = torch.float64 if cdtype == torch.complex128 else torch.float32
            self._cache[key] = [
                (
                    x,
                    torch.as_tensor(perm, device=device),
                    torch.as_tensor(t, dtype=rdtype if np.isrealobj(t) else cdtype, device=device),
                )
                for x, perm, t in self.groups
            ]
        return self._cache[key]

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        """``state (B, 2**N) complex -> (B, n_obs)`` real expectation values ``<psi|O_k|psi>``."""
        out = None
        for x, perm, table in self._tensors(state.device, state.dtype):
            if x == 0:
                dens = state.real**2 + state.imag**2  # (B, 2**N)  |psi_j|^2
                part = dens @ table if not table.is_complex() else (dens.to(table.dtype) @ table).real
            else:
                cross = state.conj() * state.index_select(1, perm)  # (B, 2**N)  conj(psi_j) psi_{j^x}
                part = (cross @ table.to(cross.dtype)).real  # (B, n_obs)
            out = part if out is None else out + part
        if out is None:
            return state.real.new_zeros((state.shape[0], self.num_outputs))
        return out

    def weighted_apply(self, state: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Return ``sum_k weights[:, k] * O_k psi``, the co-state of adjoint differentiation.

        Args:
            state: ``(B, 2**N)`` complex.
            weights: ``(B, n_obs)`` real (``dL/d<O_k>``).

        Returns:
            ``(B, 2**N)`` complex.
        """
        out = torch.zeros_like(state)
        for x, perm, table in self._tensors(state.device, state.dtype):
            coef = weights.to(table.dtype) @ table.T  # (B, 2**N)  sum_k g_k E_x[j, k]
            moved = state if x == 0 else state.index_select(1, perm)  # (B, 2**N)  psi_{j^x}
            out += moved * coef
        return out
