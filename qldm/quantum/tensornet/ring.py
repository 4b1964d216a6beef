"""The Q-FFN as a ring of real Pauli-basis transfer matrices: recognition, site tensors and readout masks.

For the Q-FFN (:func:`circuits.qffn_circuit`) the generic network of :mod:`qldm.quantum.tensornet.network` is, site by
site, a ring: site ``i`` holds data qubit ``i``, its ancilla and its gates, and neighbouring sites share only the
CNOTs of the ring. Written in the Pauli basis (``rho = 2**-n sum_P r_P P``) every piece is real:

- the encoded qubit is ``r = (1, sin a, 0, cos a)`` with ``a = atan(x)``;
- a rotation is its 4x4 Pauli transfer matrix (``1 (+) SO(3)``), and an ancilla in ``|+>`` that only controls is a
  classical bit ``b`` with weight 1/2 (per-qubit ancilla: one bit per site, shared by all layers of that site; shared
  ancilla: one bit for all sites, a global two-branch mixture; none: ``b = 1``);
- a CNOT's 16x16 transfer matrix has operator Schmidt rank 4 across control|target, so ``sum_r A_r (x) B_r`` with real
  4x4 factors (an SVD, computed once) splits it into a bond of dimension 4 between the two sites;
- the readout ring after the last layer is Clifford, so it is moved into the observables (Heisenberg picture):
  ``Z_i`` becomes a Z string, a *mask* over sites (``Z_0 ... Z_i`` for ``i >= 1`` and ``Z_1 ... Z_{n-1}`` for
  ``i = 0``), read from the final Pauli coefficients by ``e_Z`` on masked sites and ``e_I`` elsewhere.

So with ``m = n_layers - 1`` internal rings each site is a ``D x D`` matrix, ``D = 4**m``, per token and per
choice ``e in {I, Z}`` of readout vector: ``T_i^e = W_i^e[..., 0] + sin(a_i) W_i^e[..., 1] + cos(a_i) W_i^e[..., 3]``
with ``W`` built from the weights once per call (:func:`site_tensors`), and each output is a ring trace
``Tr(T_0^{e_0} ... T_{n-1}^{e_{n-1}})``, computed for all outputs at once by :mod:`qldm.quantum.tensornet.sweep`.
At two layers ``D = 4``: about 4e3 real multiply-adds per token forward for n = 16 (carrying only the readout channels
that outputs read), where the planned complex network costs 2.4e4 (opt_einsum's count).

Only specs that are exactly a ``qffn_circuit`` (same instructions, qubits, parameter expressions, parameter order and
observables as the one rebuilt from ``spec.metadata``) are recognised; everything else takes the general network.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from circuits.qffn import qffn_circuit
from circuits.spec import CircuitSpec

__all__ = ["QffnRing", "match_qffn", "site_tensors", "cx_factors", "MAX_SWEEP_LAYERS"]

#: Deepest Q-FFN the sweep takes: the bond is 4**(n_layers - 1), so 4 layers mean 64x64 transfer matrices.
MAX_SWEEP_LAYERS = 4
_PAULIS = (
    np.eye(2, dtype=complex),
    np.array([[0, 1], [1, 0]], dtype=complex),
    np.array([[0, -1j], [1j, 0]], dtype=complex),
    np.diag([1.0, -1.0]).astype(complex),
)


@dataclass(frozen=True)
class QffnRing:
    """A recognised Q-FFN: its shape and, per output, the readout mask.

    Attributes:
        n: Data qubits (sites).
        n_layers: Rotation layers; ``n_layers - 1`` CNOT rings sit between them.
        ancillas: ``"per-qubit"``, ``"shared"`` or ``"none"``.
        masks: ``(n_obs, n)`` bools: output j is the Z string on the sites where ``masks[j]`` is True.
    """

    n: int
    n_layers: int
    ancillas: str
    masks: tuple[tuple[bool, ...], ...]

    @property
    def bond(self) -> int:
        """Bond dimension ``D`` between neighbouring sites (1 without a ring: n = 1 or one layer)."""
        return 4 ** (self.n_layers - 1) if self.n >= 2 else 1


def _ring(n: int) -> list[tuple[int, int]]:
    """The CNOTs of one ring, in time order (as :func:`circuits.qffn.qffn_circuit` places them)."""
    return [(i, (i + 1) % n) for i in range(n)] if n >= 2 else []


def _heisenberg_masks(n: int, readout: str) -> tuple[tuple[bool, ...], ...]:
    """``Z_i`` pulled back through the readout ring: a CNOT conjugates ``Z_t`` to ``Z_c Z_t`` and fixes ``Z_c``."""
    masks = []
    for i in range(n):
        mask = [w == i for w in range(n)]
        if readout == "ring":
            for c, t in reversed(_ring(n)):  # U^dagger Z U: the last gate acts first
                mask[c] ^= mask[t]
        masks.append(tuple(mask))
    return tuple(masks)


def _same_instructions(a: CircuitSpec, b: CircuitSpec) -> bool:
    ca, cb = a.circuit, b.circuit
    if ca.num_qubits != cb.num_qubits or len(ca.data) != len(cb.data) or float(ca.global_phase) != 0.0:
        return False
    for ia, ib in zip(ca.data, cb.data):
        if ia.operation.name != ib.operation.name or len(ia.operation.params) != len(ib.operation.params):
            return False
        if [ca.find_bit(q).index for q in ia.qubits] != [cb.find_bit(q).index for q in ib.qubits]:
            return False
        if any(str(pa) != str(pb) for pa, pb in zip(ia.operation.params, ib.operation.params)):
            return False  # names stand for positions, which the parameter lists below pin down
    return True


def match_qffn(spec: CircuitSpec) -> QffnRing | None:
    """Recognise an exact Q-FFN, or return ``None`` (the general network then runs it).

    The spec's metadata names the builder's arguments; the spec counts as a Q-FFN only if the circuit rebuilt from
    them has the same instructions, qubits, parameter expressions, input/weight order (by name) and observables, and
    at most :data:`MAX_SWEEP_LAYERS` layers.
    """
    meta = spec.metadata
    if meta.get("kind") != "qffn":
        return None
    try:
        n, n_layers = int(meta["n_qubits"]), int(meta["n_layers"])
        ref = qffn_circuit(n, n_layers, meta["ancillas"], meta["readout"])
    except (KeyError, TypeError, ValueError):
        return None
    if n_layers > MAX_SWEEP_LAYERS:
        return None
    same_params = [p.name for p in spec.input_params] == [p.name for p in ref.input_params] and [
        p.name for p in spec.weight_params
    ] == [p.name for p in ref.weight_params]
    if not same_params or not _same_instructions(spec, ref):
        return None
    if len(spec.observables) != len(ref.observables) or any(
        not a.equiv(b) for a, b in zip(spec.observables, ref.observables)
    ):
        return None
    return QffnRing(n, n_layers, str(meta["ancillas"]), _heisenberg_masks(n, str(meta["readout"])))


@functools.cache
def cx_factors() -> tuple[np.ndarray, np.ndarray]:
    """Real ``A (4, 4, 4)``, ``B (4, 4, 4)`` with ``PTM(CX)[(p, q), (p', q')] = sum_r A[r, p, p'] B[r, q, q']``.

    ``p`` indexes the control's Pauli (I, X, Y, Z), ``q`` the target's; from an SVD of the transfer matrix
    rearranged control|target, which has exactly four non-zero singular values.
    """
    cx = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)  # kron(control, target)
    ptm = np.zeros((4, 4, 4, 4))
    for p, q, pp, qq in np.ndindex(4, 4, 4, 4):
        out, inp = np.kron(_PAULIS[p], _PAULIS[q]), np.kron(_PAULIS[pp], _PAULIS[qq])
        ptm[p, q, pp, qq] = np.trace(out @ cx @ inp @ cx.conj().T).real / 4
    u, s, vt = np.linalg.svd(ptm.transpose(0, 2, 1, 3).reshape(16, 16))
    rank = int((s > 1e-9 * s[0]).sum())
    a = (u[:, :rank] * np.sqrt(s[:rank])).T.reshape(rank, 4, 4)
    b = (np.sqrt(s[:rank])[:, None] * vt[:rank]).reshape(rank, 4, 4)
    return a, b


def _rot_ptm(angles: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` angles (phi, theta, omega) -> ``(..., 4, 4)`` transfer matrix of RZ(omega) RY(theta) RZ(phi)."""
    c, s = torch.cos(angles), torch.sin(angles)  # (..., 3)
    o, one = torch.zeros_like(c[..., 0]), torch.ones_like(c[..., 0])

    def rz(k: int) -> torch.Tensor:
        return torch.stack([one, o, o, o, o, c[..., k], -s[..., k], o, o, s[..., k], c[..., k], o, o, o, o, one], -1)

    ry = torch.stack([one, o, o, o, o, c[..., 1], o, s[..., 1], o, o, one, o, o, -s[..., 1], o, c[..., 1]], -1)
    shape = (*angles.shape[:-1], 4, 4)
    return rz(2).reshape(shape) @ ry.reshape(shape) @ rz(0).reshape(shape)


def site_tensors(ring: QffnRing, weights: torch.Tensor) -> torch.Tensor:
    """The weight part of every site's transfer matrices, differentiable in ``weights``.

    Args:
        ring: The recognised circuit.
        weights: ``(n_layers * n * 3,)`` real weights in the spec's order.

    Returns:
        ``(branches, n, 3, 2, D, D)``: for each global branch (2 for a shared ancilla, else 1), site ``i``, Pauli
        component ``p`` of the encoded qubit in ``(I, X, Z)`` and readout ``e`` in ``(I, Z)``, the matrix
        ``W[..., p, e, r, s]`` over left bond ``r`` and right bond ``s``; per-qubit ancilla bits are already summed.
    """
    n, layers, dt, dev = ring.n, ring.n_layers, weights.dtype, weights.device
    rot = _rot_ptm(weights.reshape(layers, n, 3))  # (L, n, 4, 4)
    eye = torch.eye(4, dtype=dt, device=dev).expand(layers, n, 4, 4)
    bits = {"per-qubit": (eye, rot), "shared": (eye, rot), "none": (rot,)}[ring.ancillas]
    gates = torch.stack(bits)  # (bits, L, n, 4, 4): the rotation with ancilla bit b (b = 0: identity)
    m = gates[:, 0][:, :, None, None]  # (bits, n, r=1, s=1, 4, 4): maps the encoded Pauli vector
    cnot = None
    if n >= 2 and layers > 1:
        a_np, b_np = cx_factors()
        a, b = torch.as_tensor(a_np, dtype=dt, device=dev), torch.as_tensor(b_np, dtype=dt, device=dev)
        k = a.shape[0]
        first = torch.einsum("rpq,sqk->rspk", b, a)  # site 0: control of CX(0,1), then target of CX(n-1,0)
        rest = torch.einsum("spq,rqk->rspk", a, b)  # others: target of CX(i-1,i), then control of CX(i,i+1)
        cnot = torch.cat([first[None], rest[None].expand(n - 1, k, k, 4, 4)])  # (n, r, s, 4, 4)
    for layer in range(1, layers):
        if cnot is not None:  # the ring between layer - 1 and layer: each site gains a bond to either side
            d, k = m.shape[2], cnot.shape[1]
            m = torch.einsum("irspq,bixyqk->bixryspk", cnot, m).reshape(m.shape[0], n, d * k, d * k, 4, 4)
        m = gates[:, layer][:, :, None, None] @ m
    read = m[..., [0, 3], :][..., [0, 1, 3]]  # (bits, n, D, D, e, p): rows I and Z, encoded components I, X, Z
    if ring.ancillas == "per-qubit":
        read = read.mean(0, keepdim=True)  # the site's bit, weight 1/2 each
    return read.permute(0, 1, 5, 4, 2, 3)  # (branches, n, p, e, D, D)
