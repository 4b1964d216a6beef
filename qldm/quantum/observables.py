"""Expectation values of ``SparsePauliOp`` observables on batched statevectors (Qiskit little-endian)."""

from __future__ import annotations

import numpy as np
import torch
from qiskit.quantum_info import SparsePauliOp

__all__ = ["PauliReadout"]


class PauliReadout:
    """Precomputed readout of a list of observables on ``num_wires``-qubit states.

    Diagonal observables (Z/I only) reduce to ``probs @ D`` with a ``(2**N, n_obs)`` sign table; other Pauli terms
    use a bit-flip permutation and a phase.
    """

    def __init__(self, observables: tuple[SparsePauliOp, ...], num_wires: int) -> None:
        self.num_wires = num_wires
        idx = np.arange(2**num_wires)  # basis-state indices
        self.diagonal = all(not (op.paulis.x.any()) for op in observables)
        if self.diagonal:
            table = np.zeros((2**num_wires, len(observables)))
            for j, op in enumerate(observables):
                for z, coeff in zip(op.paulis.z, op.coeffs):
                    mask = int(sum(1 << q for q in np.flatnonzero(z)))
                    parity = np.array([bin(i & mask).count("1") & 1 for i in idx])
                    table[:, j] += np.real(coeff) * (1 - 2 * parity)
            self.table = table
        else:
            self.terms = []  # per observable: list of (perm, phase vector)
            for op in observables:
                terms = []
                for pauli, coeff in zip(op.paulis, op.coeffs):
                    # Qiskit's own sparse matrix has one entry per column: P|i> = phase[i] |row[i]>.
                    mat = pauli.to_matrix(sparse=True).tocsc()
                    rows = mat.indices[mat.indptr[:-1]]
                    terms.append((rows, coeff * mat.data))
                self.terms.append(terms)

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        """``state (B, 2**N) complex -> (B, n_obs)`` real expectation values."""
        if self.diagonal:
            probs = state.real**2 + state.imag**2  # (B, 2**N)
            return probs @ torch.as_tensor(self.table, dtype=probs.dtype, device=probs.device)
        outs = []
        for terms in self.terms:
            acc = 0
            for perm, phase in terms:
                p = torch.as_tensor(phase, dtype=state.dtype, device=state.device)
                moved = torch.zeros_like(state)
                moved[:, torch.as_tensor(perm, device=state.device)] = state * p  # P psi
                acc = acc + (state.conj() * moved).sum(-1).real
            outs.append(acc)
        return torch.stack(outs, dim=-1)
