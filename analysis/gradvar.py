"""Gradient variance of random circuits: the barren-plateau experiment.

References: McClean et al., Nat. Commun. 9, 4812 (2018); Yao & Hasegawa, PRA 111, 022426 (2025).

For one point (design, n qubits, layers, observable) we draw N random circuits (structure from
:func:`circuits.bp_circuit` with a per-sample seed, angles U[0, 2pi)) and take ``d<O>/d theta_1`` exactly: torch
autograd on the batched statevector of :mod:`analysis.engine`, or, when autograd's stored states would not fit, the
exact four-term shift rule with forward passes only. Ancilla designs past ``max_exact_wires`` use branch sampling (K
on/off patterns per circuit); their variance is bias-corrected (below) and the point is marked as an estimate. The
``"qffn"`` design is the Q-FFN circuit itself (:func:`circuits.qffn_circuit`, per-qubit ancillas, ring readout, output
``<Z_0>``) with inputs x ~ N(0, 1) and uniform weights, run by qldm's statevector or tensor-network executor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from analysis.engine import SkeletonBatch
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
        pooled: Also collect gradients of all parameters (needs autograd memory).
        branches: Sampled ancilla patterns per circuit when a point is past statevector reach.
        max_exact_wires: Widest exact simulation; wider ancilla points are branch-sampled.
        memory_bytes: Budget for autograd's stored states before switching to the shift rule.
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

    def __post_init__(self) -> None:
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
        method: How the gradient was computed (e.g. ``"statevector-autograd"``, ``"branch-shift"``).
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


def sample_gradients(cfg: PointConfig) -> GradientSamples:
    """Draw the point's N circuits and differentiate them.

    Returns:
        The per-sample gradients (see :class:`GradientSamples`).

    Raises:
        ValueError: If ``pooled`` is asked where it cannot be computed by autograd within ``memory_bytes``.
    """
    rng = _rng(cfg)
    if cfg.design == "qffn":
        return _qffn_samples(cfg, rng)
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=cfg.samples)]
    specs = [
        bp_circuit(cfg.n_qubits, cfg.n_layers, ancillas=cfg.design, observable=cfg.observable, seed=s) for s in seeds
    ]
    angles = rng.uniform(0, 2 * np.pi, (cfg.samples, specs[0].num_weights))
    n_anc = len(specs[0].ancilla_qubits)
    branch = specs[0].num_qubits > cfg.max_exact_wires and n_anc > 0
    if branch and 2**n_anc <= cfg.branches:
        patterns = np.array([[(p >> j) & 1 for j in range(n_anc)] for p in range(2**n_anc)])  # enumerate: exact
        exact = True
    elif branch:
        patterns = None
        exact = False
    else:
        exact = True
    k = (len(patterns) if patterns is not None else cfg.branches) if branch else 1
    rows_angles = np.repeat(angles, k, axis=0)  # sample-major, K rows per sample
    rows_pat = None
    if branch:
        rows_pat = (
            np.tile(patterns, (cfg.samples, 1))
            if patterns is not None
            else rng.integers(0, 2, (len(rows_angles), n_anc))
        )
    probe = SkeletonBatch(specs[:1], branch=branch)
    per_row = probe.state_memory(1) * (len(probe.steps) + 4)
    use_autograd = per_row <= cfg.memory_bytes
    if cfg.pooled and not use_autograd:
        raise ValueError(
            f"pooled gradients need ~{per_row / 2**30:.1f} GiB per circuit by autograd (budget "
            f"{cfg.memory_bytes / 2**30:.1f} GiB); drop pooled or raise the budget"
        )
    rows = cfg.memory_bytes // per_row if use_autograd else cfg.memory_bytes // (8 * probe.state_memory(1))
    chunk = max(1, int(rows) // k)  # circuits per chunk
    first, pooled = [], []
    for lo in range(0, cfg.samples, chunk):
        batch = SkeletonBatch(specs[lo : lo + chunk], branch=branch, repeat=k)
        sl = slice(lo * k, (lo + chunk) * k)
        a = torch.as_tensor(rows_angles[sl])
        pat = torch.as_tensor(rows_pat[sl]) if rows_pat is not None else None
        if use_autograd:
            a.requires_grad_()
            (grad,) = torch.autograd.grad(batch.expectation(a, pat).sum(), a)
            first.append(grad[:, 0].numpy())
            if cfg.pooled:
                pooled.append(grad.numpy())
        else:
            first.append(shift_derivative(lambda t, b=batch, p=pat: b.expectation(t, p), a, 0).numpy())
    g = np.concatenate(first).reshape(cfg.samples, k)
    p = np.concatenate(pooled).reshape(cfg.samples, k, -1) if cfg.pooled else None
    if branch and patterns is not None:  # exact enumeration: average the branches
        g = g.mean(1, keepdims=True)
        p = p.mean(1, keepdims=True) if p is not None else None
    method = ("branch" if branch else "statevector") + ("-autograd" if use_autograd else "-shift")
    return GradientSamples(g, p, exact, method, seeds)


def _branch_variance(g: np.ndarray) -> float:
    """Unbiased Var of the true per-sample gradient from ``(N, K)`` branch estimates.

    ``Var(mean_k g) = Var(true) + E[s_within**2] / K``, so subtract the mean within-sample variance over K.
    """
    if g.shape[1] == 1:
        return float(np.var(g[:, 0], ddof=1))
    k = g.shape[1]
    return float(np.var(g.mean(1), ddof=1) - np.var(g, axis=1, ddof=1).mean() / k)


def variance_ci(g: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Variance over samples with a percentile bootstrap interval (resampling whole circuits).

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
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, g.shape[0], size=(n_boot, g.shape[0]))
    boots = np.array([_branch_variance(g[i]) for i in idx])
    a = (1 - level) / 2
    return _branch_variance(g), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


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
