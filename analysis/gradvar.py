"""Gradient variance of random circuits: the barren-plateau experiment.

References: McClean et al., Nat. Commun. 9, 4812 (2018); Yao & Hasegawa, PRA 111, 022426 (2025).

For one point (design, n qubits, layers, observable) we draw N random circuits (structure from
:func:`circuits.bp_circuit` with a per-sample seed, angles U[0, 2pi)) and take ``d<O>/d theta_1`` exactly on the array
engine of :mod:`analysis.engine` (all N circuits at once; tangent propagation for ``theta_1``, adjoint for every
parameter), or, when even those few states per circuit would not fit ``memory_bytes``, by the exact four-term shift
rule with forward passes only. The per-qubit ancilla design's theta_1 gradient is exact at any n by the chain cut
(:func:`analysis.engine.per_qubit_first_gradient`); otherwise ancilla designs past ``max_exact_wires`` use branch
sampling (K on/off patterns per circuit), their variance bias-corrected (below) and the point marked as an estimate.
The ``"qffn"`` design is the Q-FFN circuit itself (:func:`circuits.qffn_circuit`, per-qubit ancillas, ring
readout, output ``<Z_0>``) with inputs x ~ N(0, 1) and uniform weights, run by qldm's statevector or tensor-network
executor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from analysis.engine import AXES, BPBatch, bp_axes, per_qubit_first_gradient
from circuits import bp_circuit, qffn_circuit
from circuits.spec import CircuitSpec
from qldm.quantum.shift import shift_derivative

__all__ = [
    "DESIGNS",
    "OBSERVABLES",
    "PointConfig",
    "GradientSamples",
    "sample_gradients",
    "variance_ci",
    "fit_slope",
    "REFERENCE_SLOPE",
]

DESIGNS: tuple[str, ...] = ("none", "per-qubit", "shared", "qffn")
OBSERVABLES: tuple[str, ...] = ("z0z1", "global", "local")
REFERENCE_SLOPE = -float(np.log(2))  # deep baseline, 2-design: Var ~ 2**-n (McClean 2018)
_TANGENT_STATES = 6  # states per row while differentiating theta_1: state, tangent, product buffers
_ADJOINT_STATES = 8  # states per row for all parameters: state, co-state, product buffers, one block's operands


@dataclass(frozen=True)
class PointConfig:
    """One point of the study.

    Attributes:
        design: ``"none"``, ``"per-qubit"``, ``"shared"`` or ``"qffn"``.
        n_qubits: Data qubits.
        n_layers: Layers.
        observable: ``"z0z1"``, ``"global"`` or ``"local"`` (ignored by ``"qffn"``, which reads ``<Z_0>``).
        samples: Random circuits N.
        seed: Master seed; structure seeds and angles derive from it and the point.
        pooled: Also collect gradients of all parameters (adjoint differentiation).
        branches: Sampled ancilla patterns per circuit when a point is past statevector reach.
        max_exact_wires: Widest exact simulation; wider ancilla points are branch-sampled.
        memory_bytes: Budget for the states of one chunk of circuits; below one circuit's need the shift rule is used.
        precision: ``"float64"`` (default) or ``"float32"`` amplitudes of the array engine (not part of ``key``).
        chain_cut: Per-qubit design, theta_1, observable on qubits 0-1: the exact chain-cut decomposition
            (:func:`analysis.engine.per_qubit_first_gradient`, any n); ``False``: enumerate or sample patterns.
    """

    design: str
    n_qubits: int
    n_layers: int
    observable: str = "z0z1"
    samples: int = 100
    seed: int = 0
    pooled: bool = False
    branches: int = 8
    max_exact_wires: int = 20
    memory_bytes: int = 1 << 30
    precision: str = "float64"
    chain_cut: bool = True

    def __post_init__(self) -> None:
        if self.precision not in ("float64", "float32"):
            raise ValueError(f"precision must be 'float64' or 'float32', got {self.precision!r}")
        if self.design not in DESIGNS:
            raise ValueError(f"unknown design {self.design!r}; choose one of {DESIGNS}")
        if self.observable not in OBSERVABLES:
            raise ValueError(f"unknown observable {self.observable!r}; choose one of {OBSERVABLES}")
        if self.n_qubits < 2 or self.n_layers < 1 or self.samples < 2 or self.branches < 1:
            raise ValueError(
                f"need n_qubits >= 2, n_layers >= 1, samples >= 2, branches >= 1; got {self.n_qubits}, "
                f"{self.n_layers}, {self.samples}, {self.branches}"
            )
        # Refuse by size before anything is allocated: one state of the widest statevector must fit the budget, or
        # 1 GiB when the budget is smaller (a tiny budget only forces the shift rule, which runs one state at a
        # time). Ancilla designs past max_exact_wires are branch-sampled on the data wires; qffn then uses tensornet.
        n = self.n_qubits
        wires = {"none": n, "per-qubit": 2 * n, "shared": n + 1, "qffn": 2 * n}[self.design]
        if wires > self.max_exact_wires:
            wires = 0 if self.design == "qffn" else n
        need, limit = 16 * 2.0**wires, max(self.memory_bytes, 1 << 30)  # complex128 amplitudes
        if need > limit:
            raise ValueError(
                f"design {self.design!r} with n_qubits={n} needs a {wires}-wire statevector ({need / 2**30:.3g} GiB "
                f"per circuit), over the limit of {limit / 2**30:.3g} GiB; use fewer qubits or raise the memory "
                "budget (--memory-gb)"
            )

    @property
    def key(self) -> str:
        """Identity of the point inside a result file (for ``--resume``)."""
        return f"{self.design}|n{self.n_qubits}|L{self.n_layers}|{self.observable}|N{self.samples}|s{self.seed}"


@dataclass(frozen=True)
class GradientSamples:
    """Per-sample gradients of one point.

    Attributes:
        first: ``(N, K)`` derivatives by theta_1; K = 1 when exact, else one column per sampled branch.
        pooled: ``(N, K, P)`` derivatives by every parameter, or ``None``.
        exact: Whether ``first.mean(1)`` is the exact gradient of each sample.
        method: How the gradient was computed (e.g. ``"statevector-tangent"``, ``"branch-shift"``).
        structure_seeds: The per-sample circuit seeds.
    """

    first: np.ndarray
    pooled: np.ndarray | None
    exact: bool
    method: str
    structure_seeds: list[int]


def _rng(cfg: PointConfig) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, DESIGNS.index(cfg.design), cfg.n_qubits, cfg.n_layers])


def _qffn_samples(cfg: PointConfig, rng: np.random.Generator) -> GradientSamples:
    from qldm.quantum.statevector import StatevectorExecutor

    spec = qffn_circuit(cfg.n_qubits, cfg.n_layers, ancillas="per-qubit", readout="ring")
    # Inputs and weights both vary per sample, so treat all of them as batched inputs of one program.
    flat = CircuitSpec(
        circuit=spec.circuit,
        input_params=spec.input_params + spec.weight_params,
        weight_params=(),
        observables=spec.observables[:1],
        data_qubits=spec.data_qubits,
        ancilla_qubits=spec.ancilla_qubits,
        name=spec.name + "-flat",
    )
    if spec.num_qubits <= cfg.max_exact_wires:
        executor, method = StatevectorExecutor(dtype=torch.float64, chunk_size=64), "statevector-autograd"
    else:
        from qldm.quantum.tensornet import TensorNetworkExecutor

        executor, method = TensorNetworkExecutor(dtype=torch.float64, chunk_size=64), "tensornet-autograd"
    program = executor.compile(flat)
    x = torch.as_tensor(rng.standard_normal((cfg.samples, spec.num_inputs)))
    w = torch.as_tensor(rng.uniform(0, 2 * np.pi, (cfg.samples, spec.num_weights))).requires_grad_()
    out = program(torch.cat([x, w], dim=1), torch.zeros(0, dtype=torch.float64))  # (N, 1)
    (grad,) = torch.autograd.grad(out.sum(), w)  # rows are independent, so d(sum)/dw_b = d out_b / d w_b
    g = grad.numpy()
    return GradientSamples(g[:, :1], g[:, None, :] if cfg.pooled else None, True, method, [])


def _controls(design: str, n: int) -> tuple[int, ...] | None:
    """Pattern column controlling each data qubit's rotations (``None`` without ancillas)."""
    return {"none": None, "per-qubit": tuple(range(n)), "shared": (0,) * n}[design]


def sample_gradients(cfg: PointConfig) -> GradientSamples:
    """Draw the point's N circuits (as arrays, :mod:`analysis.engine`) and differentiate them exactly.

    The per-qubit design's theta_1 gradient (observable on qubits 0-1, ``chain_cut``) is exact at any n from the
    chain-cut pieces of :func:`analysis.engine.per_qubit_first_gradient` (about three n-qubit states per circuit).
    Otherwise ancilla designs within ``max_exact_wires`` enumerate every on/off pattern (exact, the cost of the full
    statevector); wider ones sample ``branches`` patterns per circuit. For ``theta_1`` alone the pattern bit of its
    own ancilla is fixed to on and the result halved: with that bit off the derivative is exactly 0, so this is the
    same unbiased estimator with less variance (and half the exact enumeration).

    Returns:
        The per-sample gradients (see :class:`GradientSamples`).

    Raises:
        ValueError: If ``pooled`` is asked where the adjoint's states do not fit ``memory_bytes``.
        RuntimeError: If the array draw of the structure disagrees with :func:`circuits.bp_circuit`.
    """
    rng = _rng(cfg)
    if cfg.design == "qffn":
        return _qffn_samples(cfg, rng)
    n, n_layers = cfg.n_qubits, cfg.n_layers
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=cfg.samples)]
    axes = np.stack([bp_axes(n, n_layers, s) for s in seeds])  # (N, L, n)
    reference = bp_circuit(n, n_layers, ancillas=cfg.design, observable=cfg.observable, seed=seeds[0])
    if ["".join(AXES[a] for a in row) for row in axes[0]] != reference.metadata["axes"]:
        raise RuntimeError("the engine's structure draw differs from circuits.bp_circuit")
    angles = rng.uniform(0, 2 * np.pi, (cfg.samples, reference.num_weights))
    dtype = getattr(torch, cfg.precision)
    state_bytes = 2**n * 2 * torch.empty((), dtype=dtype).element_size()  # complex amplitudes: two reals each
    fits = _TANGENT_STATES * state_bytes <= cfg.memory_bytes  # else the shift-rule path below
    if cfg.chain_cut and cfg.design == "per-qubit" and cfg.observable != "global" and not cfg.pooled and fits:
        g = per_qubit_first_gradient(axes, torch.as_tensor(angles, dtype=dtype), cfg.observable, dtype).numpy()
        return GradientSamples(g[:, None], None, True, "statevector-cut-tangent", seeds)
    controls = _controls(cfg.design, n)
    n_anc = len(reference.ancilla_qubits)
    branch = reference.num_qubits > cfg.max_exact_wires and n_anc > 0
    patterns, exact = None, True
    if n_anc and (not branch or 2**n_anc <= cfg.branches):
        patterns = np.array([[(p >> j) & 1 for j in range(n_anc)] for p in range(2**n_anc)])  # enumerate: exact
    elif branch:
        exact = False
    halve = n_anc > 0 and not cfg.pooled  # theta_1's ancilla fixed on (see above)
    if patterns is not None and halve:
        patterns = patterns[patterns[:, controls[0]] == 1]
    k = len(patterns) if patterns is not None else (cfg.branches if branch else 1)
    rows_angles = torch.as_tensor(np.repeat(angles, k, axis=0), dtype=dtype)  # sample-major, K rows per sample
    rows_axes = np.repeat(axes, k, axis=0)
    rows_pat = None
    if n_anc:
        if patterns is not None:
            rows_pat = np.tile(patterns, (cfg.samples, 1))
        else:
            rows_pat = rng.integers(0, 2, (len(rows_angles), n_anc))
        if halve:
            rows_pat[:, controls[0]] = 1
        rows_pat = torch.as_tensor(rows_pat)
    state = BPBatch(axes=rows_axes[:1], observable=cfg.observable, controls=controls, dtype=dtype).state_bytes()
    need = (_ADJOINT_STATES if cfg.pooled else _TANGENT_STATES) * state
    if cfg.pooled and need > cfg.memory_bytes:
        raise ValueError(
            f"pooled gradients need ~{need / 2**30:.2g} GiB per circuit for the adjoint's states (budget "
            f"{cfg.memory_bytes / 2**30:.2g} GiB); drop pooled or raise the budget"
        )
    use_shift = need > cfg.memory_bytes  # a cross-check path: forward passes of one state only
    chunk = max(1, int(cfg.memory_bytes // need)) if not use_shift else 1
    first, pooled = [], []
    for lo in range(0, len(rows_angles), chunk):
        sl = slice(lo, lo + chunk)
        batch = BPBatch(axes=rows_axes[sl], observable=cfg.observable, controls=controls, dtype=dtype)
        a, pat = rows_angles[sl], rows_pat[sl] if rows_pat is not None else None
        if cfg.pooled:
            grad = batch.gradients(a, pat).numpy()
            first.append(grad[:, 0])
            pooled.append(grad)
        elif use_shift:
            first.append(shift_derivative(lambda t, b=batch, p=pat: b.expectation(t, p), a, 0).numpy())
        else:
            first.append(batch.first_gradient(a, pat).numpy())
    g = np.concatenate(first).astype(float).reshape(cfg.samples, k) * (0.5 if halve else 1.0)
    p = np.concatenate(pooled).astype(float).reshape(cfg.samples, k, -1) if cfg.pooled else None
    if patterns is not None and n_anc:  # exact enumeration: average the branches
        g = g.mean(1, keepdims=True)
        p = p.mean(1, keepdims=True) if p is not None else None
    how = "adjoint" if cfg.pooled else ("shift" if use_shift else "tangent")
    return GradientSamples(g, p, exact, ("branch" if not exact else "statevector") + "-" + how, seeds)


def _branch_variance(g: np.ndarray) -> float:
    """Unbiased Var of the true per-sample gradient from ``(N, K)`` branch estimates.

    ``Var(mean_k g) = Var(true) + E[s_within**2] / K``, so subtract the mean within-sample variance over K.
    """
    if g.shape[1] == 1:
        return float(np.var(g[:, 0], ddof=1))
    k = g.shape[1]
    return float(np.var(g.mean(1), ddof=1) - np.var(g, axis=1, ddof=1).mean() / k)


def variance_ci(g: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Variance over samples with a percentile bootstrap interval (resampling whole circuits; scipy's ``bootstrap``).

    Args:
        g: ``(N,)`` exact gradients or ``(N, K)`` branch estimates.
        n_boot: Bootstrap resamples.
        level: Interval coverage.
        seed: Bootstrap seed.

    Returns:
        ``(variance, low, high)``.

    Raises:
        ValueError: With fewer than 2 samples.
    """
    g = np.asarray(g, dtype=float)
    g = g[:, None] if g.ndim == 1 else g
    if g.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a variance, got {g.shape[0]}")
    from scipy.stats import bootstrap

    # resample row indices, so a circuit's K branch estimates travel together
    ci = bootstrap(
        (np.arange(g.shape[0]),),
        lambda rows: _branch_variance(g[rows]),
        n_resamples=n_boot,
        confidence_level=level,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return _branch_variance(g), float(ci.low), float(ci.high)


def fit_slope(n: np.ndarray, var: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[float, float, float] | None:
    """Weighted least-squares fit of ``ln Var = a + slope * n``.

    Each point's weight is ``1 / sigma**2`` with ``sigma = (ln high - ln low) / (2 * 1.96)`` from its bootstrap
    interval. Points with a non-positive variance or bound (possible for bias-corrected estimates) are dropped.

    Returns:
        ``(slope, standard error, intercept)``, or ``None`` with fewer than 2 usable points.
    """
    n, var, low, high = (np.asarray(v, dtype=float) for v in (n, var, low, high))
    ok = (var > 0) & (low > 0) & (high > 0)
    if ok.sum() < 2:
        return None
    x, y = n[ok], np.log(var[ok])
    sigma = np.maximum((np.log(high[ok]) - np.log(low[ok])) / (2 * 1.96), 1e-3)
    w = 1 / sigma**2
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    coef = cov @ design.T @ (w * y)
    resid = y - design @ coef
    dof = max(int(ok.sum()) - 2, 1)
    scale = max(1.0, float((w * resid**2).sum() / dof))  # inflate when scatter exceeds the bootstrap errors
    return float(coef[1]), float(np.sqrt(cov[1, 1] * scale)), float(coef[0])


def run_point(cfg: PointConfig, *, n_boot: int = 1000) -> dict:
    """Run one point and summarise it as a JSON-able dict (see :class:`analysis.results.PointResult`)."""
    t0 = time.perf_counter()
    gs = sample_gradients(cfg)
    var, lo, hi = variance_ci(gs.first, n_boot=n_boot, seed=cfg.seed)
    out = {
        "variance": var,
        "ci_low": lo,
        "ci_high": hi,
        "mean_grad": float(gs.first.mean()),
        "exact": gs.exact,
        "method": gs.method,
        "branches": int(gs.first.shape[1]) if not gs.exact else None,
        "pooled_variance": None,
        "pooled_ci": None,
    }
    if gs.pooled is not None:
        flat = gs.pooled.transpose(0, 2, 1).reshape(-1, gs.pooled.shape[1])  # (N*P, K): every parameter a sample
        pv, plo, phi = variance_ci(flat, n_boot=min(n_boot, 200), seed=cfg.seed)
        out["pooled_variance"], out["pooled_ci"] = pv, [plo, phi]
    out["seconds"] = time.perf_counter() - t0
    out["structure_seeds"] = gs.structure_seeds
    return out
