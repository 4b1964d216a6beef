"""Does the quantum branch carry signal, and is it classically simulable?

Sensitivity: for a Q-FFN circuit (:func:`circuits.qffn_circuit`) with weights drawn as ``QuantumLayer`` draws them,
the spread (std over inputs x ~ N(0, 1)) of each output <Z_i> and the norm of its input gradient. With per-qubit
ancillas and the ring readout each <Z_i> is a parity of many qubits, each damped by the ancilla mixture, so both
shrink with n (docs/quantum-facts.md). Simulability: the Schmidt rank of the full 2n-wire state across a cut of the
ring (the bond dimension an exact MPS of the ket needs; the ket-with-bra network squares it), and, where the
tensor-network executor plans the contraction, its largest intermediate per token. Both grow with layers, not with n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from circuits import qffn_circuit

__all__ = [
    "VERDICT",
    "SensitivityPoint",
    "sensitivity",
    "sensitivity_sweep",
    "schmidt_rank",
    "simulability",
    "check_simulability_size",
    "contraction_width",
]


# The conclusion the simulability study supports (printed by ``qldm expressivity`` and the notebook).
INITS: tuple[str, ...] = ("uniform", "small")  # QuantumLayer's weight initialisations
MAX_STATE_WIRES = 26  # widest exact state of the Schmidt-rank study (1 GiB of complex128)

VERDICT = (
    "Bond dimension across a ring cut grows like 4**L and not with n: the Q-FFN at a fixed small depth "
    "(the original uses L=2) is an O(n) tensor-network contraction per token at any n, so it is classically "
    "simulable exactly and cannot by itself support a quantum-advantage claim; only depth growing with n "
    "escapes this."
)


@dataclass(frozen=True)
class SensitivityPoint:
    """Output spread and input-gradient norm of one Q-FFN configuration.

    Attributes:
        n_qubits, n_layers, ancillas, readout, init: The configuration.
        spread: ``(n,)`` std over inputs of each <Z_i>, averaged over weight draws.
        grad_norm: ``(n,)`` mean over inputs of ``|d<Z_i>/dx|``, averaged over weight draws.
        executor: Which exact executor ran it.
    """

    n_qubits: int
    n_layers: int
    ancillas: str
    readout: str
    init: str
    spread: list[float]
    grad_norm: list[float]
    executor: str

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["spread_max"], d["spread_median"] = float(np.max(self.spread)), float(np.median(self.spread))
        d["grad_norm_max"], d["grad_norm_median"] = (
            float(np.max(self.grad_norm)),
            float(np.median(self.grad_norm)),
        )
        return d


def _executor(num_wires: int, max_exact_wires: int):
    from qldm.quantum.statevector import StatevectorExecutor

    if num_wires <= max_exact_wires:
        return StatevectorExecutor(dtype=torch.float64, chunk_size=256)
    from qldm.quantum.tensornet import TensorNetworkExecutor

    return TensorNetworkExecutor(dtype=torch.float64, chunk_size=256)


def sensitivity(
    n_qubits: int,
    *,
    n_layers: int = 2,
    ancillas: str = "per-qubit",
    readout: str = "ring",
    init: str = "uniform",
    inputs: int = 64,
    weight_draws: int = 3,
    seed: int = 0,
    max_exact_wires: int = 16,
) -> SensitivityPoint:
    """Measure output spread and input-gradient norms (exactly: statevector, or tensor network past it).

    Raises:
        ValueError: On a bad circuit configuration (from :func:`circuits.qffn_circuit`) or init.
    """
    from qldm.quantum.layer import QuantumLayer

    _check_counts(inputs, weight_draws)
    spec = qffn_circuit(n_qubits, n_layers, ancillas=ancillas, readout=readout)
    executor = _executor(spec.num_qubits, max_exact_wires)
    torch.manual_seed(seed)
    spreads, grads = [], []
    for _ in range(weight_draws):
        layer = QuantumLayer(spec, executor=executor, init=init).double()
        x = torch.randn(inputs, n_qubits, dtype=torch.float64, requires_grad=True)
        out = layer(x)  # (inputs, n)
        spreads.append(out.detach().std(0).numpy())
        norms = []
        for i in range(n_qubits):  # one backward per output: rows are independent, so grad of the sum is per row
            (g,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=i < n_qubits - 1)
            norms.append(g.norm(dim=1).mean().item())
        grads.append(norms)
    return SensitivityPoint(
        n_qubits,
        n_layers,
        ancillas,
        readout,
        init,
        np.mean(spreads, 0).tolist(),
        np.mean(grads, 0).tolist(),
        executor.name,
    )


def sensitivity_sweep(
    qubits: list[int],
    *,
    ancillas: list[str] = ("none", "per-qubit"),
    readouts: list[str] = ("ring", "local"),
    layers: list[int] = (2,),
    inits: list[str] = ("uniform",),
    progress: bool = True,
    **kw,
) -> list[SensitivityPoint]:
    """:func:`sensitivity` for every combination (``kw`` passes ``inputs``, ``weight_draws``, ``seed``...).

    Raises:
        ValueError: On an empty list, or (before any point runs) a bad ancilla mode, readout, init or count.
    """
    from tqdm import tqdm

    combos = [(a, r, L, i, n) for a in ancillas for r in readouts for L in layers for i in inits for n in qubits]
    if not combos:
        raise ValueError("nothing to measure: qubits, ancillas, readouts, layers and inits must all be non-empty")
    bad_inits = sorted(set(inits) - set(INITS))
    if bad_inits:
        raise ValueError(f"unknown init(s) {bad_inits}; choose from {INITS}")
    for a, r, L, _, n in combos:  # every circuit is built once first: a bad one fails before the sweep runs
        qffn_circuit(n, L, ancillas=a, readout=r)
    _check_counts(kw.get("inputs", 64), kw.get("weight_draws", 3))
    return [
        sensitivity(n, n_layers=L, ancillas=a, readout=r, init=i, **kw)
        for a, r, L, i, n in tqdm(combos, desc="sensitivity", unit="cfg", disable=not progress)
    ]


def _check_counts(inputs: int, weight_draws: int) -> None:
    if inputs < 2 or weight_draws < 1:
        raise ValueError(f"need inputs >= 2 (a spread) and weight_draws >= 1, got {inputs} and {weight_draws}")


def schmidt_rank(state: np.ndarray, left: list[int], num_wires: int, tol: float = 1e-10) -> int:
    """Schmidt rank of a pure state (Qiskit little-endian, ``2**num_wires``) across ``left`` vs the other wires."""
    psi = np.asarray(state).reshape((2,) * num_wires)
    axes_left = [num_wires - 1 - q for q in left]  # tensor axis of qubit q
    axes_right = [a for a in range(num_wires) if a not in axes_left]
    mat = np.transpose(psi, axes_left + axes_right).reshape(2 ** len(left), -1)
    s = np.linalg.svd(mat, compute_uv=False)
    return int((s > tol * s[0]).sum())


def check_simulability_size(n_qubits: int, *, ancillas: str = "per-qubit") -> None:
    """Refuse, before allocating anything, a :func:`simulability` state wider than ``MAX_STATE_WIRES``.

    Raises:
        ValueError: Naming the width and the memory it would take.
    """
    wires = qffn_circuit(n_qubits, 1, ancillas=ancillas).num_qubits
    if wires > MAX_STATE_WIRES:
        raise ValueError(
            f"the Schmidt-rank study of n_qubits={n_qubits} needs a {wires}-wire statevector "
            f"({16 * 2.0**wires / 2**30:.3g} GiB); at most {MAX_STATE_WIRES} wires, use fewer qubits"
        )


def simulability(n_qubits: int, layers: list[int], *, ancillas: str = "per-qubit", seed: int = 0) -> list[dict]:
    """Bond dimension of the Q-FFN state against layers.

    For each L, the exact state at random inputs and weights (Qiskit ``Statevector``), and its Schmidt rank across the
    cut {data 0..n/2-1 with their ancillas} | rest. A ring cut crosses two bonds, so the rank is at most the square of
    the per-bond dimension; the maximum possible is ``2**(wires on the smaller side)``.

    Returns:
        One dict per L: ``{"n_layers", "schmidt_rank", "max_rank", "wires"}``.

    Raises:
        ValueError: If the state would be wider than ``MAX_STATE_WIRES`` (refused before allocating it).
    """
    from qiskit.quantum_info import Statevector

    check_simulability_size(n_qubits, ancillas=ancillas)
    rng = np.random.default_rng(seed)
    out = []
    for L in layers:
        spec = qffn_circuit(n_qubits, L, ancillas=ancillas, readout="ring")
        bound = spec.bind(rng.standard_normal(spec.num_inputs), rng.uniform(0, 2 * np.pi, spec.num_weights))
        sv = Statevector(bound).data
        half = n_qubits // 2
        left = list(range(half)) + [q for q in spec.ancilla_qubits if q - n_qubits < half and ancillas == "per-qubit"]
        out.append(
            {
                "n_layers": L,
                "schmidt_rank": schmidt_rank(sv, left, spec.num_qubits),
                "max_rank": 2 ** min(len(left), spec.num_qubits - len(left)),
                "wires": spec.num_qubits,
            }
        )
    return out


def contraction_width(n_qubits: int, layers: list[int], *, ancillas: str = "per-qubit") -> list[dict]:
    """The tensor-network executor's planned cost per token (largest intermediate, flops) against layers.

    Returns:
        One dict per L: ``{"n_layers", "largest", "flops", "statevector_size"}`` (``statevector_size = 2**wires``).
    """
    from qldm.quantum.tensornet import TensorNetworkExecutor

    ex = TensorNetworkExecutor(dtype=torch.float64, chunk_size=1)
    out = []
    for L in layers:
        spec = qffn_circuit(n_qubits, L, ancillas=ancillas, readout="ring")
        plan = ex.compile(spec).plan
        out.append(
            {
                "n_layers": L,
                "largest": float(plan.largest),
                "flops": float(plan.flops),
                "statevector_size": float(2**spec.num_qubits),
            }
        )
    return out


def plot_sensitivity(points: list[SensitivityPoint], path=None):
    """Two panels against n: median/max output spread and input-gradient norm, one line per configuration."""
    import matplotlib.pyplot as plt  # pyplot, so a notebook shows the figure inline

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    groups: dict[tuple, list[SensitivityPoint]] = {}
    for p in points:
        groups.setdefault((p.ancillas, p.readout, p.n_layers, p.init), []).append(p)
    for key, pts in groups.items():
        pts = sorted(pts, key=lambda p: p.n_qubits)
        n = [p.n_qubits for p in pts]
        label = "{}/{}/L{}/{}".format(*key)
        for ax, attr in zip(axes, ("spread", "grad_norm")):
            line = ax.plot(n, [np.median(getattr(p, attr)) for p in pts], "o-", label=label)
            ax.plot(n, [np.max(getattr(p, attr)) for p in pts], "^:", color=line[0].get_color(), ms=4)
    for ax, name in zip(axes, ("output spread std_x <Z_i>", "input-gradient norm |d<Z_i>/dx|")):
        ax.set_yscale("log")
        ax.set_xlabel("qubits n")
        ax.set_title(name + " (o median, ^ max over i)", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_simulability(rows: list[dict], path=None):
    """Schmidt rank (and its maximum) against layers."""
    import matplotlib.pyplot as plt  # pyplot, so a notebook shows the figure inline

    fig, ax = plt.subplots(figsize=(5, 3.5))
    L = [r["n_layers"] for r in rows]
    ax.semilogy(L, [r["schmidt_rank"] for r in rows], "o-", label="Schmidt rank across ring cut")
    ax.semilogy(L, [r["max_rank"] for r in rows], "k--", label="maximum possible")
    ax.set_xlabel("layers L")
    ax.set_ylabel("bond dimension")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
