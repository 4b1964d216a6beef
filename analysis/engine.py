"""Batched exact simulation of the barren-plateau circuits as arrays, with exact gradients in O(1) states.

The random circuits of :func:`circuits.bp_circuit` (H on every wire; per layer one rotation ``R_a(theta)``,
``a in {X, Y, Z}``, per data qubit, optionally controlled by an ancilla in ``|+>``; then a CZ open chain) differ between
seeds only in the axis of each rotation. So a point's ``S`` circuits are one ``(S, L, n)`` array of axis choices and
one ``(S, L * n)`` array of angles, and all of them run together as rows of one ``(R, 2**n)`` complex tensor: nothing
is built gate by gate in Python or Qiskit. :func:`bp_axes` reproduces the axis draw of :func:`circuits.bp_circuit`
(a test compares the arrays and the resulting gradients with ``qiskit.quantum_info`` on the Qiskit circuits).

A layer is applied as a few dense block matrices: the rotations on ``k <= 4`` neighbouring qubits are multiplied
into one per-row ``2**k x 2**k`` matrix and applied by one batched matrix product that also moves the block from the
most to the least significant bits of the index (``Y = X^T M^T``), so the next block is always the leading axis and
no transpose pass is needed; after all blocks of a layer the index order is back where it started. The CZ chain is
one multiplication by a ``+-1`` vector. Each pass reads and writes the state once, at ``2**k / k`` complex
multiply-adds per amplitude and gate; ``k = 4`` was the fastest of 2, 3, 4, 5, 7 at n = 14 (of 2, 3, 4 at n = 16),
the balance of fewer passes against more arithmetic.

Ancillas (``"per-qubit"``, ``"shared"``) are used only as controls, so (docs/quantum-facts.md) ``<O>`` is the average
over their on/off patterns of the data-only circuit in which a rotation acts only when its control bit is on: a row
is one (circuit, pattern) pair, and an off rotation is the identity. Enumerating all patterns is exact at the cost of
the full statevector; sampling K of them gives the branch estimator.

Gradients, both exact:

- ``first_gradient``: ``d<O>/d theta_1`` by forward-mode (tangent) propagation. ``theta_1`` acts first on its qubit,
  so with ``V`` the rest of the circuit, ``d<O>/d theta_1 = 2 Re <V psi_1| O |V psi_1'>``, ``psi_1' = dR/dtheta
  psi_0``: the tangent row runs beside the state row through the same matrices (two states per row). Layer 0 acts on
  ``|+>^n``, so both start as Kronecker products of 2-vectors; the block matrices of many layers are built in one go
  (no per-layer Python for small n), and the products write into two ping-pong buffers.
- ``gradients``: all parameters by adjoint differentiation (Jones & Gacon, arXiv:2009.02823): one forward pass, then
  one backward pass un-applying each block to the state and to the co-state ``lambda = O psi``; the gradient of a
  block matrix ``M`` is read from ``G = sum_rest conj(lambda) psi^T`` and carried to the angles by autograd on the
  small per-row matrices only (three states per row, independent of depth).

:func:`per_qubit_first_gradient` gives the per-qubit ancilla design's exact ``theta_1`` gradient at any n without
patterns: cutting the chain at the first switched-off qubit leaves ``n`` pieces of at most n qubits (see there).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

__all__ = ["AXES", "BPBatch", "bp_axes", "BLOCK", "per_qubit_first_gradient"]

AXES: tuple[str, ...] = ("x", "y", "z")
BLOCK = 4  # qubits per dense block: 16x16 matrices balance arithmetic against passes over the state
_CHUNK_BYTES = 8 << 20  # states of one row chunk: bigger chunks amortise the per-op overhead (measured)
_CUT_PAD = 8  # chain-cut pieces this narrow run together, padded to this width
_MAT_BYTES = 8 << 20  # block matrices built at once for a group of layers
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def bp_axes(n_qubits: int, n_layers: int, seed: int) -> np.ndarray:
    """The rotation axes of ``circuits.bp_circuit(n_qubits, n_layers, seed=seed)`` as ``(L, n)`` indices into AXES.

    The same generator call as the circuit builder, so the arrays equal its ``metadata["axes"]``.
    """
    drawn = np.random.default_rng(seed).choice(np.array(["x", "y", "z"]), size=(n_layers, n_qubits))
    return np.searchsorted(np.array(AXES), drawn)


def _bits(n: int) -> np.ndarray:
    """``(2**n, n)`` 0/1 table: bit q of each basis index (Qiskit little-endian)."""
    idx = np.arange(2**n)
    return (idx[:, None] >> np.arange(n)) & 1


class BPBatch:
    """Rows of barren-plateau circuits on ``n`` data qubits, simulated together.

    Args:
        axes: ``(R, L, n)`` integer axis indices (0, 1, 2 for X, Y, Z), one row per simulated circuit.
        observable: ``"z0z1"``, ``"global"`` or ``"local"`` (Z on qubits 0 and 1, on all, on qubit 0).
        controls: ``None`` without ancillas, else ``(n,)`` pattern column controlling each qubit's rotations
            (``"per-qubit"``: ``0..n-1``; ``"shared"``: all 0).
        dtype: ``torch.float64`` or ``torch.float32`` (complex128 or complex64 amplitudes).

    Raises:
        ValueError: On a bad shape, axis index, observable or dtype.
    """

    def __init__(
        self,
        *,
        axes: np.ndarray | torch.Tensor,
        observable: str = "z0z1",
        controls: tuple[int, ...] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        axes = torch.as_tensor(np.asarray(axes), dtype=torch.long)
        if axes.dim() != 3 or axes.numel() == 0:
            raise ValueError(f"axes must have shape (R, L, n) with R, L, n >= 1, got {tuple(axes.shape)}")
        if int(axes.min()) < 0 or int(axes.max()) > 2:
            raise ValueError("axes must be 0, 1 or 2 (X, Y, Z)")
        if dtype not in _COMPLEX:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.rows, self.layers, self.n = (int(s) for s in axes.shape)
        obs_qubits = {"z0z1": [0, 1], "global": list(range(self.n)), "local": [0]}.get(observable)
        if obs_qubits is None or max(obs_qubits) >= self.n:
            raise ValueError(f"observable {observable!r} is unknown or needs more than {self.n} qubits")
        if controls is not None and len(controls) != self.n:
            raise ValueError(f"controls must name one pattern column per qubit ({self.n}), got {len(controls)}")
        self.axes, self.controls, self.dtype, self.cdtype = axes, controls, dtype, _COMPLEX[dtype]
        bits = _bits(self.n)
        self.obs = torch.as_tensor((-1.0) ** bits[:, obs_qubits].sum(1), dtype=dtype)  # (2**n,) diagonal of O
        cz = (bits[:, :-1] * bits[:, 1:]).sum(1) if self.n > 1 else np.zeros(2**self.n)
        self.czc = torch.as_tensor((-1.0) ** cz, dtype=self.cdtype)  # (2**n,) the CZ chain's diagonal
        # blocks from the most significant qubit down: (lowest qubit, size)
        self.blocks = [(max(hi - BLOCK, 0), hi - max(hi - BLOCK, 0)) for hi in range(self.n, 0, -BLOCK)]
        paulis = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
        self._minus_i_p = torch.as_tensor(-1j * paulis, dtype=self.cdtype)  # (3, 2, 2): R = c I + s (-i P)

    def state_bytes(self) -> int:
        """Bytes of one row's state."""
        return 2**self.n * torch.empty((), dtype=self.cdtype).element_size()

    # ------------------------------------------------------------------ per-row matrices
    def _rotations(
        self, angles: torch.Tensor, layer: int | range, on: torch.Tensor | None, derivative: bool = False
    ) -> torch.Tensor:
        """``(R, n, 2, 2)`` rotation matrices of one layer, ``(R, G, n, 2, 2)`` of a range of G layers (or their angle
        derivatives); off rotations are I (or 0)."""
        lo, hi = (layer, layer + 1) if isinstance(layer, int) else (layer.start, layer.stop)
        half = angles[:, lo * self.n : hi * self.n].reshape(self.rows, hi - lo, self.n) / 2  # (R, G, n)
        c, s = torch.cos(half), torch.sin(half)
        if derivative:
            c, s = -s / 2, c / 2
        eye = torch.eye(2, dtype=self.cdtype)
        gen = self._minus_i_p[self.axes[:, lo:hi]]  # (R, G, n, 2, 2)
        m = c[..., None, None] * eye + s[..., None, None] * gen
        if on is not None:
            off_value = torch.zeros_like(eye) if derivative else eye
            m = torch.where(on[:, None, :, None, None], m, off_value)
        return m[:, 0] if isinstance(layer, int) else m

    def _block_mats(self, rot: torch.Tensor) -> list[torch.Tensor]:
        """Per block (order of ``self.blocks``): ``(..., 2**k, 2**k)`` Kronecker products, qubit ``lo`` lowest bit.

        ``rot`` is ``(..., n, 2, 2)`` (leading dims: rows, or rows and layers).
        """
        mats = []
        for lo, k in self.blocks:
            m = rot[..., lo + k - 1, :, :]
            for q in range(lo + k - 2, lo - 1, -1):
                d = m.shape[-1]
                m = torch.einsum("...ab,...cd->...acbd", m, rot[..., q, :, :]).reshape(*m.shape[:-2], 2 * d, 2 * d)
            mats.append(m)
        return mats

    def _on(self, patterns: torch.Tensor | None) -> torch.Tensor | None:
        if self.controls is None:
            if patterns is not None:
                raise ValueError("patterns are given, but the circuits have no ancillas")
            return None
        if patterns is None or patterns.shape[0] != self.rows:
            raise ValueError(f"ancilla circuits need patterns of shape ({self.rows}, a)")
        return patterns[:, list(self.controls)].bool()  # (R, n)

    def _check(self, angles: torch.Tensor) -> None:
        if angles.shape != (self.rows, self.layers * self.n):
            raise ValueError(f"angles must have shape ({self.rows}, {self.layers * self.n}), got {tuple(angles.shape)}")

    # ------------------------------------------------------------------ kernels
    def _plus(self, copies: int) -> torch.Tensor:
        return torch.full((self.rows * copies, 2**self.n), 2 ** (-self.n / 2), dtype=self.cdtype)  # H^n |0>

    def _forward_block(self, psi: torch.Tensor, m: torch.Tensor, k: int) -> torch.Tensor:
        """Apply ``m`` to the leading ``k`` qubits; they become the trailing ones: ``(R', 2**n)``."""
        x = psi.view(psi.shape[0], 2**k, -1)  # (R', A, rest)
        return torch.bmm(x.transpose(1, 2), m.transpose(1, 2)).view(psi.shape[0], -1)  # (R', rest, A)

    def _backward_block(self, psi: torch.Tensor, m: torch.Tensor, k: int) -> torch.Tensor:
        """Un-apply ``m`` on the trailing ``k`` qubits; they become the leading ones again."""
        x = psi.view(psi.shape[0], -1, 2**k)  # (R', rest, A)
        return torch.bmm(m.conj().transpose(1, 2), x.transpose(1, 2)).reshape(psi.shape[0], -1)  # (R', A, rest)

    def _cz(self, psi: torch.Tensor) -> None:
        # a complex diagonal multiply: same-shape elementwise, vectorised (a real +-1 broadcast over re/im is not)
        psi.mul_(self.czc)

    def _layer(self, psi: torch.Tensor, mats: list[torch.Tensor]) -> torch.Tensor:
        for (_, k), m in zip(self.blocks, mats):
            psi = self._forward_block(psi, m, k)
        self._cz(psi)
        return psi

    def _product_states(self, angles: torch.Tensor, on: torch.Tensor | None, tangent: bool) -> torch.Tensor:
        """Layer 0 and the CZ chain on ``|+>^n``: ``(R, S, 2**n)``, S = 2 with the theta_1 tangent as second state.

        Layer 0 acts on a product state, so its state is a Kronecker product of ``n`` 2-vectors (``2**n`` work,
        no pass of block matrices), and so is the tangent ``dR_0/dtheta_1 |+> (x) R_1 |+> ...``.
        """
        plus = torch.full((2,), 2**-0.5, dtype=self.cdtype)
        vec = self._rotations(angles, 0, on) @ plus  # (R, n, 2): R_q |+>
        vecs = [vec]
        if tangent:
            dvec = vec.clone()
            dvec[:, 0] = self._rotations(angles, 0, on, derivative=True)[:, 0] @ plus
            vecs.append(dvec)
        vec = torch.stack(vecs, dim=1)  # (R, S, n, 2)
        psi = vec[:, :, 0]  # qubit 0 is the least significant bit: kron(v_q, psi) appends q as the leading bit
        for q in range(1, self.n):
            psi = (vec[:, :, q, :, None] * psi[:, :, None, :]).flatten(2)
        psi = psi.contiguous()
        self._cz(psi)
        return psi

    def _propagate(self, angles: torch.Tensor, on: torch.Tensor | None, tangent: bool) -> torch.Tensor:
        """All layers for one chunk of rows: ``(R, S, 2**n)`` final states (S = 2: state and theta_1 tangent).

        The block matrices of a group of layers are built at once (a few tensor ops for many layers) and laid out
        ``(G, R * S, A, A)`` so each product takes a view; two ping-pong buffers hold the state between passes.
        """
        psi = self._product_states(angles, on, tangent)
        rows, s, dim = psi.shape
        bufs = [psi.view(rows * s, dim), torch.empty_like(psi).view(rows * s, dim)]
        mat_bytes = rows * s * len(self.blocks) * 2 ** (2 * BLOCK) * psi.element_size()
        group = max(1, _MAT_BYTES // mat_bytes)
        cur = 0
        for first in range(1, self.layers, group):
            layers = range(first, min(first + group, self.layers))
            mats = self._group_mats(angles, layers, on, s)
            for g in range(len(layers)):
                for (_, k), m in zip(self.blocks, mats):
                    x = bufs[cur].view(rows * s, 2**k, -1).transpose(1, 2)  # (R S, rest, A)
                    torch.bmm(x, m[g], out=bufs[1 - cur].view(rows * s, -1, 2**k))  # block becomes trailing
                    cur = 1 - cur
                self._cz(bufs[cur])
        return bufs[cur].view(rows, s, dim)

    def _group_mats(self, angles: torch.Tensor, layers: range, on: torch.Tensor | None, s: int) -> list[torch.Tensor]:
        """Per block: ``(G, R * S, A, A)`` transposed block matrices of ``layers``, repeated for the S states."""
        rot = self._rotations(angles, layers, on)  # (R, G, n, 2, 2)
        out = []
        for m in self._block_mats(rot):  # (R, G, A, A)
            m = m.transpose(0, 1).transpose(-1, -2)  # (G, R, A, A): Y = X^T M^T
            out.append(m[:, :, None].expand(-1, -1, s, -1, -1).reshape(m.shape[0], -1, *m.shape[-2:]))
        return out

    def _chunks(self, tangent: bool) -> list[slice]:
        """Row slices of at most ``_CHUNK_BYTES`` of states (8 MiB: larger chunks were faster than L2-sized ones)."""
        per_row = (2 if tangent else 1) * 2 * self.state_bytes()  # states and their ping-pong buffer
        size = max(1, _CHUNK_BYTES // per_row)
        return [slice(lo, lo + size) for lo in range(0, self.rows, size)]

    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def expectation(self, angles: torch.Tensor, patterns: torch.Tensor | None = None) -> torch.Tensor:
        """``<O>`` per row.

        Args:
            angles: ``(R, L * n)`` weights, ``angles[:, l * n + i]`` for layer l, qubit i.
            patterns: ``(R, a)`` 0/1 ancilla bits for ancilla circuits, else ``None``.

        Returns:
            ``(R,)`` expectation values in the real dtype.

        Raises:
            ValueError: On wrong shapes or a missing/extra ``patterns`` argument.
        """
        self._check(angles)
        on = self._on(patterns)
        out = []
        for sl in self._chunks(tangent=False):
            psi = self._sub(sl)._propagate(angles[sl], None if on is None else on[sl], tangent=False)[:, 0]
            out.append((psi.real.square() + psi.imag.square()) @ self.obs)
        return torch.cat(out)

    @torch.no_grad()
    def first_gradient(self, angles: torch.Tensor, patterns: torch.Tensor | None = None) -> torch.Tensor:
        """``d<O>/d angles[:, 0]`` (the paper's ``theta_{1,1}``) per row, exact, by tangent propagation.

        Args and raises as :meth:`expectation`.

        Returns:
            ``(R,)`` derivatives.
        """
        self._check(angles)
        on = self._on(patterns)
        out = []
        for sl in self._chunks(tangent=True):
            psi = self._sub(sl)._propagate(angles[sl], None if on is None else on[sl], tangent=True)
            out.append(2 * ((psi[:, 0].conj() * psi[:, 1]).real @ self.obs))
        return torch.cat(out)

    def _sub(self, sl: slice) -> BPBatch:
        """The same batch restricted to rows ``sl`` (shares the tables; no copies)."""
        sub = copy.copy(self)
        sub.axes = self.axes[sl]
        sub.rows = int(sub.axes.shape[0])
        return sub

    def gradients(self, angles: torch.Tensor, patterns: torch.Tensor | None = None) -> torch.Tensor:
        """``d<O>/d angles`` per row for every parameter, exact, by adjoint differentiation.

        Args and raises as :meth:`expectation`.

        Returns:
            ``(R, L * n)`` derivatives.
        """
        self._check(angles)
        on = self._on(patterns)
        angles = angles.detach()
        with torch.no_grad():
            psi = self._plus(1)
            for layer in range(self.layers):
                psi = self._layer(psi, self._block_mats(self._rotations(angles, layer, on)))
            lam = psi * self.obs  # co-state O psi
            pair = torch.stack([psi, lam], dim=1).flatten(0, 1)  # (2R, 2**n): rows (psi, lambda)
        grads = torch.zeros_like(angles)
        for layer in range(self.layers - 1, -1, -1):
            a = angles.clone().requires_grad_()
            with torch.enable_grad():
                mats = self._block_mats(self._rotations(a, layer, on))
            with torch.no_grad():
                self._cz(pair)  # the CZ chain is its own inverse
                reduced = []
                for (_, k), m in zip(reversed(self.blocks), reversed(mats)):
                    lam_after = pair.view(self.rows, 2, -1, 2**k)[:, 1]  # (R, rest, A)
                    pair = self._backward_block(pair, m.detach().repeat_interleave(2, dim=0), k)
                    psi_before = pair.view(self.rows, 2, 2**k, -1)[:, 0]  # (R, A, rest)
                    # G[i, j] = sum_rest conj(lambda_after[i]) psi_before[j]
                    reduced.append(torch.bmm(lam_after.conj().transpose(1, 2), psi_before.transpose(1, 2)))
            with torch.enable_grad():
                total = sum((m * g).real.sum() for m, g in zip(reversed(mats), reduced))
                (g_layer,) = torch.autograd.grad(2 * total, a)
            grads += g_layer
        return grads


def per_qubit_first_gradient(
    axes: np.ndarray, angles: torch.Tensor, observable: str = "z0z1", dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Exact ``d<O>/d theta_1`` of the per-qubit ancilla design from ``n`` chain-cut pieces, without patterns.

    ``<O>`` is the mean over ancilla patterns of the data circuit in which qubit q rotates iff its bit is on. With
    theta_1's own bit off the derivative is 0 (probability 1/2). With it on, let j >= 1 be the first qubit whose bit is
    off (probability ``2**-j``): qubit j never rotates, so it stays diagonal in the computational basis and each
    branch of it acts on qubits ``j + 1, ...`` only through diagonal CZs; with ``O`` supported on qubits ``<= j``, those
    qubits drop out exactly, and every pattern with that prefix gives the gradient of the ``(j + 1)``-qubit chain
    ``0..j`` with qubit j off. With all bits on (probability ``2**-(n-1)``) it is the baseline circuit. So the exact
    gradient is ``1/2 [sum_j 2**-j g_j + 2**-(n-1) g_all]``: the cost of about three n-qubit states instead of
    ``2**(n-1)`` pattern rows (or a sampled estimate).

    Args:
        axes: ``(N, L, n)`` axis indices of N circuits.
        angles: ``(N, L * n)`` weights.
        observable: ``"z0z1"`` or ``"local"`` (supported on qubits 0 and 1, or 0).
        dtype: ``torch.float64`` or ``torch.float32``.

    Returns:
        ``(N,)`` exact derivatives, float64.

    Raises:
        ValueError: For an observable past qubit 1 (``"global"``) or bad shapes.
    """
    if observable not in ("z0z1", "local"):
        raise ValueError(f"the chain cut needs an observable on qubits 0 and 1 only, got {observable!r}")
    axes = np.asarray(axes)
    rows, layers, n = axes.shape
    ang = torch.as_tensor(angles, dtype=dtype).reshape(rows, layers, n)
    # (first off qubit j or None for all on, weight) per run width; pieces up to _CUT_PAD qubits share one run of
    # that width: the qubits past the off one are off too, which the cut makes irrelevant (one run, not eight)
    runs: dict[int, list[tuple[int | None, float]]] = {n: [(None, 2.0 ** -(n - 1))]}
    for j in range(1, n):
        runs.setdefault(max(j + 1, min(n, _CUT_PAD)), []).append((j, 2.0**-j))
    total = torch.zeros(rows, dtype=torch.float64)
    for width, cases in runs.items():
        pattern = torch.ones(len(cases), width, dtype=torch.long)
        for i, (j, _) in enumerate(cases):
            if j is not None:
                pattern[i, j:] = 0
        k = len(cases)
        piece = BPBatch(
            axes=np.repeat(axes[:, :, :width], k, 0), observable=observable, controls=tuple(range(width)), dtype=dtype
        )
        a = torch.repeat_interleave(ang[:, :, :width].flatten(1), k, 0)
        g = piece.first_gradient(a, pattern.repeat(rows, 1)).double().view(rows, k)
        total += g @ torch.tensor([w for _, w in cases], dtype=torch.float64)
    return total / 2
