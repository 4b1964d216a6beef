"""Turn a compiled spec into a labelled ket-and-bra tensor network (the structure only, no contraction).

The network represents ``Tr(rho O)`` for ``rho = U |0><0| U^dagger``: a ket copy of the circuit, a conjugated bra copy,
and one *slot* tensor per observed wire where the ket and bra ends meet. Three structural simplifications keep it small
and generic (they read gate matrices, never gate names):

- **Gate fusion.** Consecutive gates whose union acts on <= 2 wires become one tensor (the three controlled
  rotations of a controlled ``Rot``, a wire's single-qubit gates, the ``|0>`` preparation). Gates have three levels:
  constant, weight-only (one tensor per call) and per-token (angles depend on the inputs, found by evaluating the
  spec's angle function on two random tokens). A multi-qubit gate is never fused with a gate of a higher level, so only
  the encoding carries the token index and everything else is evaluated once per chunk.
- **Diagonal wires are hyperedges.** A gate that is diagonal on a wire (a control, ``cz``, ``crz``, ``rz``...) does not
  start a new index there: it shares the wire's current index, as in cotengra/quimb's hyper-graph circuits.
- **Traced wires close early.** An unobserved wire's ket and bra ends are one index. An ancilla that is prepared in
  ``|+>`` and only ever controls (Yao & Hasegawa, PRA 111, 022426) then becomes one dimension-2 hyperedge whose two end
  vectors multiply to ``[1/2, 1/2]``: the classical branch mixture of ``docs/quantum-facts.md``, found, not assumed.
  Wires observed only through ``I``/``Z`` close the same way and get a diagonal slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from qiskit.quantum_info import Pauli

from qldm.quantum.compile import CompiledSpec, GateOp

__all__ = ["FusedGate", "Leaf", "TermGroup", "Network", "build_network", "gate_tensor", "MAX_FUSED_WIRES"]

MAX_FUSED_WIRES = 2
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class FusedGate:
    """Gates fused into one tensor: ``wires`` (local order), members as ``(op, local positions)`` in time order.

    ``diag[j]``: the fused gate is diagonal on local wire j; ``sliced[j]``: the gate is the first on that wire
    and not diagonal there, so its input leg is fixed to ``|0>``.
    """

    wires: tuple[int, ...]
    members: tuple[tuple[GateOp, tuple[int, ...]], ...]
    diag: tuple[bool, ...]
    sliced: tuple[bool, ...]
    per_token: bool = False  # some angle depends on the inputs, so the tensor has a token dimension

    @property
    def batched(self) -> bool:
        """Whether any member has parameters, so the tensor carries a token dimension."""
        return any(op.basis is not None for op, _ in self.members)


@dataclass(frozen=True)
class Leaf:
    """One tensor of the network: its index labels and either a constant or a fused gate (``conj`` for the bra)."""

    labels: tuple[int, ...]
    const: np.ndarray | None = None
    gate: int | None = None  # index into Network.gates
    conj: bool = False
    batch_ones: bool = False  # a ones vector on the batch label (keeps it present for constant circuits)


@dataclass(frozen=True)
class TermGroup:
    """Pauli terms with one support: ``leaves`` (slot leaf ids), ``factors[s]`` of shape ``(T, *slot shape)``."""

    leaves: tuple[int, ...]
    factors: tuple[np.ndarray, ...]
    terms: tuple[int, ...]  # term ids (rows of Network.coeffs)


@dataclass(frozen=True)
class Network:
    """Labelled network; label ``batch`` is the token index, every other label has dimension 2."""

    gates: tuple[FusedGate, ...]
    leaves: tuple[Leaf, ...]
    batch: int
    num_labels: int
    groups: tuple[TermGroup, ...]
    coeffs: np.ndarray  # (n_terms, n_obs) complex: observable j = sum_t coeffs[t, j] P_t
    identity_terms: tuple[int, ...]  # terms equal to the identity (value Tr(rho) = 1)


def _is_diag(op: GateOp, j: int) -> bool:
    """Whether ``op`` (for all parameter values) has no entry that flips the bit of local wire j."""
    mats = op.basis.coeffs if op.basis is not None else op.matrix[None]
    idx = np.arange(mats.shape[-1])
    off = ((idx[:, None] >> j) & 1) != ((idx[None, :] >> j) & 1)
    return bool(np.all(np.abs(mats[:, off]) < 1e-12))


def _matrix_tensor(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """``(*lead, d, d)`` Qiskit matrix -> ``(*lead, out_0..out_{k-1}, in_0..in_{k-1})``, j = index bit."""
    lead = matrix.shape[:-2]
    t = matrix.reshape(*lead, *([2] * (2 * k)))  # row bits most significant first
    n = len(lead)
    order = [n + k - 1 - j for j in range(k)] + [n + 2 * k - 1 - j for j in range(k)]
    return t.permute(*range(n), *order)


def gate_tensor(gate: FusedGate, angles: torch.Tensor | None, cdtype: torch.dtype) -> torch.Tensor:
    """Evaluate a fused gate to its leaf tensor.

    Args:
        gate: The fused gate.
        angles: ``(B, n_angles)`` gate angles, or ``None`` for a constant gate.
        cdtype: Complex dtype.

    Returns:
        ``([B,] legs...)`` with, per local wire j: one leg if diagonal, the output leg if sliced, else output
        then input leg (the order :func:`build_network` labels them in).
    """
    k = len(gate.wires)
    batched = gate.batched
    b = "Z" if batched else ""
    outs, ins = _LETTERS[:k], _LETTERS[k : 2 * k]
    acc: torch.Tensor | None = None
    for op, pos in gate.members:
        m = op.torch_matrix(angles if op.basis is not None else None, cdtype)
        if op.basis is None and angles is not None:
            m = m.to(angles.device)
        g = _matrix_tensor(m, len(pos))  # ([B,] out..., in...)
        gb = "Z" if op.basis is not None else ""
        if acc is None and len(pos) == k and list(pos) == list(range(k)):
            acc, acc_b = g, gb
            continue
        if acc is None:  # start from the identity on all k wires
            eye = torch.eye(2**k, dtype=cdtype, device=m.device)
            acc, acc_b = _matrix_tensor(eye, k), ""
        new = _LETTERS[2 * k : 2 * k + len(pos)]
        cur = list(outs)
        g_eq = gb + "".join(new) + "".join(cur[p] for p in pos)
        res = list(cur)
        for p, c in zip(pos, new):
            res[p] = c
        out_b = "Z" if (gb or acc_b) else ""
        acc = torch.einsum(f"{acc_b}{outs}{ins},{g_eq}->{out_b}{''.join(res)}{ins}", acc, g)
        acc_b = out_b
    assert acc is not None
    if batched and not acc_b:
        acc = acc.unsqueeze(0).expand(angles.shape[0], *acc.shape)
    # slice sliced inputs at |0>, then take diagonals
    lead = 1 if batched else 0
    in_letters = list(ins)
    for j in reversed(range(k)):
        if gate.sliced[j]:
            acc = acc.select(lead + k + j, 0)
            in_letters[j] = ""
    src = b + outs + "".join(c for c in in_letters if c)
    src_list = list(src)
    for j in range(k):
        if gate.diag[j]:
            src_list[len(b) + k + sum(1 for c in in_letters[:j] if c)] = outs[j]
    dst = b
    for j in range(k):
        dst += outs[j] if (gate.diag[j] or gate.sliced[j]) else outs[j] + ins[j]
    return torch.einsum(f"{''.join(src_list)}->{dst}", acc)


# ---------------------------------------------------------------------------------------------------- fusion
def _token_slots(compiled: CompiledSpec) -> set[int]:
    """Angle slots that depend on the inputs, found by evaluating the angles of two random tokens."""
    if compiled.spec.num_inputs == 0 or compiled.num_angles == 0:
        return set()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, compiled.spec.num_inputs, generator=gen, dtype=torch.float64)
    a = compiled.angles(x, torch.randn(compiled.spec.num_weights, generator=gen, dtype=torch.float64))
    return {int(i) for i in torch.nonzero(~torch.isclose(a[0], a[1], rtol=0, atol=1e-12)).flatten()}


def _level(op: GateOp, token: set[int]) -> int:
    """0: constant, 1: depends on weights only (one tensor per call), 2: per token."""
    return 0 if op.basis is None else 2 if token.intersection(op.slots) else 1


def _fuse(ops: tuple[GateOp, ...], token: set[int]) -> list[list[GateOp]]:
    """Group ops in time order; see the module docstring for the rules."""
    groups: dict[int, list[GateOp]] = {}
    wires: dict[int, set[int]] = {}
    last: dict[int, int] = {}
    order: list[int] = []  # group ids; a merged group moves to the end, which keeps every wire's order
    for gid, op in enumerate(ops):
        prev = {last[w] for w in op.qubits if w in last}
        union = set(op.qubits).union(*(wires[g] for g in prev))
        members = [m for g in sorted(prev) for m in groups[g]] + [op]
        level = max(_level(m, token) for m in members)
        ok = bool(prev) and len(union) <= max(MAX_FUSED_WIRES, len(op.qubits))
        ok = ok and not any(_level(m, token) < level and len(m.qubits) > 1 for m in members)
        if ok and len(prev) > 1:  # moving several groups to op's time needs each to be last on all its wires
            ok = all(last[w] == g for g in prev for w in wires[g])
        if ok and len(prev) == 1:
            (g,) = prev
            groups[g].append(op)
            wires[g] |= set(op.qubits)
            for w in op.qubits:
                last[w] = g
            continue
        if ok:
            for g in prev:
                order.remove(g)
        else:
            members = [op]
        groups[gid], wires[gid] = members, {q for m in members for q in m.qubits}
        order.append(gid)
        for w in wires[gid]:
            last[w] = gid
    return [groups[g] for g in order]


def _pauli_terms(observables) -> tuple[list[str], np.ndarray]:
    """Distinct phase-free Pauli labels (qubit 0 rightmost) and the ``(n_terms, n_obs)`` coefficient matrix."""
    labels: dict[str, int] = {}
    rows: list[tuple[int, int, complex]] = []
    for j, op in enumerate(observables):
        for pauli, coeff in zip(op.paulis, op.coeffs):
            phase = (-1j) ** int(pauli.phase)
            bare = Pauli((pauli.z, pauli.x)).to_label()  # no phase: x and z bits only
            t = labels.setdefault(bare, len(labels))
            rows.append((t, j, complex(coeff) * phase))
    coeffs = np.zeros((len(labels), len(observables)), dtype=complex)
    for t, j, c in rows:
        coeffs[t, j] += c
    return list(labels), coeffs


def build_network(compiled: CompiledSpec) -> Network:
    """Build the ket/bra network of ``Tr(rho P_t)`` for every Pauli term of the spec's observables.

    Raises:
        ValueError: If an observable term is not a Pauli string over the circuit's wires.
    """
    n = compiled.num_wires
    terms, coeffs = _pauli_terms(compiled.spec.observables)
    support = [[w for w in range(n) if lab[n - 1 - w] != "I"] for lab in terms]
    observed = {w for s in support for w in s}
    diag_obs = {w for w in observed if all(lab[n - 1 - w] in "IZ" for lab in terms)}

    counter = iter(range(1, 1 << 30))
    cur: dict[int, int] = {}
    ket: list[tuple[tuple[int, ...], int | None, np.ndarray | None]] = []  # (labels, gate id, const)
    gates: list[FusedGate] = []
    e0 = np.array([1, 0], dtype=complex)
    token = _token_slots(compiled)
    for members in _fuse(compiled.ops, token):
        wires = tuple(sorted({q for m in members for q in m.qubits}))
        local = {w: j for j, w in enumerate(wires)}
        placed = tuple((m, tuple(local[q] for q in m.qubits)) for m in members)
        diag = tuple(all(_is_diag(m, pos.index(j)) for m, pos in placed if j in pos) for j in range(len(wires)))
        labels: list[int] = []
        sliced = []
        for j, w in enumerate(wires):
            sliced.append(w not in cur and not diag[j])
            if diag[j]:
                if w not in cur:
                    cur[w] = next(counter)
                    ket.append(((cur[w],), None, e0))
                labels.append(cur[w])
            else:
                out = next(counter)
                labels += [out] if w not in cur else [out, cur[w]]
                cur[w] = out
        per_token = any(_level(m, token) == 2 for m in members)
        gates.append(FusedGate(wires, placed, diag, tuple(sliced), per_token))
        batch = (0,) if per_token else ()  # label 0, the token index, leads every batched tensor
        ket.append((batch + tuple(labels), len(gates) - 1, None))
    for w in sorted(observed - set(cur)):
        cur[w] = next(counter)
        ket.append(((cur[w],), None, e0))
    closed = {cur[w] for w in cur if w not in observed or w in diag_obs}  # ket end == bra end
    offset = next(counter)

    def bra(label: int) -> int:
        return label if label in closed or label == 0 else label + offset

    leaves = [Leaf((0,), batch_ones=True)]
    for labels, g, const in ket:
        leaves.append(Leaf(labels, const=const, gate=g))
        leaves.append(
            Leaf(
                tuple(bra(x) for x in labels),
                const=None if const is None else const.conj(),
                gate=g,
                conj=True,
            )
        )
    slot: dict[int, int] = {}
    for w in sorted(observed):
        slot[w] = len(leaves)
        diag_slot = w in diag_obs
        leaves.append(
            Leaf(
                (cur[w],) if diag_slot else (cur[w], bra(cur[w])),
                const=np.ones(2, complex) if diag_slot else np.eye(2, dtype=complex),
            )
        )

    by_support: dict[tuple[int, ...], list[int]] = {}
    for t, s in enumerate(support):
        by_support.setdefault(tuple(s), []).append(t)
    groups = []
    for s, ts in by_support.items():
        if not s:
            continue
        factors = []
        for w in s:
            mats = np.stack([Pauli(terms[t][n - 1 - w]).to_matrix() for t in ts])  # (T, 2, 2)
            factors.append(np.einsum("tii->ti", mats) if w in diag_obs else mats.transpose(0, 2, 1))
        groups.append(TermGroup(tuple(slot[w] for w in s), tuple(factors), tuple(ts)))
    ident = tuple(by_support.get((), ()))
    return Network(tuple(gates), tuple(leaves), 0, offset * 2, tuple(groups), coeffs, ident)
