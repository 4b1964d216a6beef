"""A gradient-variance study: run many points into a :class:`StudyResult`, fit slopes, format the table.

Shared by ``qldm bp`` and the notebooks, so neither holds logic of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from analysis.gradvar import REFERENCE_SLOPE, PointConfig, fit_slope, run_point, variance_ci
from analysis.plots import series
from analysis.results import StudyResult

__all__ = ["make_configs", "run_study", "fit_all", "format_table", "point_cost", "shard"]


def point_cost(cfg: PointConfig) -> float:
    """Rough relative cost, to run the cheapest points first under a budget and to balance shards."""
    n = cfg.n_qubits
    wires = {"none": n, "per-qubit": 2 * n, "shared": n + 1, "qffn": 2 * n}[cfg.design]
    if cfg.design == "per-qubit" and cfg.chain_cut and cfg.observable != "global" and not cfg.pooled:
        wires = n + 1.6  # the chain cut: about three n-qubit states
    elif wires > cfg.max_exact_wires and cfg.design != "qffn":
        wires = n + 3  # branch sampling: K states of n qubits
    return cfg.n_layers * n * 2.0**wires


def shard(configs: list[PointConfig], index: int, count: int) -> list[PointConfig]:
    """The configs of shard ``index`` (1-based) of ``count``, balanced by :func:`point_cost` (longest first).

    Every shard gets a disjoint part of the same split, so ``count`` processes (one per core) can run one study into
    one result file (see :func:`run_study`).

    Raises:
        ValueError: Unless ``1 <= index <= count``.
    """
    if not 1 <= index <= count:
        raise ValueError(f"shard must be I/M with 1 <= I <= M, got {index}/{count}")
    loads, mine = [0.0] * count, []
    for cfg in sorted(configs, key=point_cost, reverse=True):
        k = loads.index(min(loads))
        loads[k] += point_cost(cfg)
        if k == index - 1:
            mine.append(cfg)
    return sorted(mine, key=point_cost)


def _save_merged(result: StudyResult, out: Path, merge: bool, refit: bool = False) -> None:
    """Save ``result`` after adding the points another process (shard) wrote to ``out`` meanwhile (under a lock);
    with ``refit``, fit the slopes over all of them before writing."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released on close
        if merge and out.exists():
            mine = result.done()
            for point in StudyResult.load(out).points:
                if point["key"] not in mine:
                    result.points.append(point)
        if refit:
            fit_all(result)
        result.save(out)


def make_configs(designs: Iterable[str], qubits: Iterable[int], layers: Iterable[int], **common) -> list[PointConfig]:
    """All design x layers x qubits points with shared settings, cheapest first.

    Raises:
        ValueError: On a bad design, observable or size (from :class:`PointConfig`).
    """
    configs = [PointConfig(design=d, n_qubits=n, n_layers=L, **common) for d in designs for L in layers for n in qubits]
    return sorted(configs, key=point_cost)


def _noisy_point(cfg: PointConfig, backend: str, n_boot: int) -> dict:
    from analysis.noise import aer_shift_gradients

    t0 = time.perf_counter()
    g, seeds, _ = aer_shift_gradients(
        cfg.design,
        cfg.n_qubits,
        cfg.n_layers,
        observable=cfg.observable,
        samples=cfg.samples,
        seed=cfg.seed,
        backend=backend,
    )
    v, lo, hi = variance_ci(g, n_boot=n_boot, seed=cfg.seed)
    return {
        "variance": v,
        "ci_low": lo,
        "ci_high": hi,
        "mean_grad": float(g.mean()),
        "exact": True,
        "method": f"aer-density-matrix-shift:{backend}",
        "branches": None,
        "pooled_variance": None,
        "pooled_ci": None,
        "seconds": time.perf_counter() - t0,
        "structure_seeds": seeds,
    }


def run_study(
    result: StudyResult,
    configs: list[PointConfig],
    *,
    n_boot: int = 1000,
    noise: str | None = None,
    budget_s: float | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    merge: bool = False,
) -> list[str]:
    """Run every config not yet in ``result`` (by key), saving ``out`` after each point; then fit the slopes.

    With ``merge``, each save first adds the points already in ``out`` that ``result`` lacks, under a lock, so
    several processes running disjoint shards (:func:`shard`) of one study can share ``out``; without it ``out`` is
    overwritten. A killed run loses at most its running point, and a resumed one skips every point in ``out``.

    Args:
        result: Result to extend (a fresh one or a loaded one to resume).
        configs: Points to run.
        n_boot: Bootstrap resamples per point.
        noise: ``"fake:<FakeName>"`` for Aer density-matrix gradients under that device's noise model.
        budget_s: Start no new point after this many seconds.
        out: Result file, written atomically after every point.
        progress: Show a tqdm bar.
        merge: Merge with the points other processes write to ``out`` (see above).

    Returns:
        Keys of the points skipped because the budget ran out (or, with ``noise``, the device is too small).
    """
    from tqdm import tqdm

    if noise:
        from analysis.noise import NoisyEstimator

        result.noise = {"backend": noise, "calibration_date": NoisyEstimator(noise).calibration}
    out = Path(out) if out is not None else None
    done = result.done()
    todo = [c for c in configs if c.key not in done]
    t_start, skipped = time.perf_counter(), []
    for cfg in tqdm(todo, desc="bp points", unit="pt", disable=not progress):
        if budget_s is not None and time.perf_counter() - t_start > budget_s:
            skipped.append(cfg.key)
            continue
        if noise:
            from analysis.noise import DeviceTooSmallError

            try:
                outcome = _noisy_point(cfg, noise, n_boot)
            except DeviceTooSmallError as err:
                skipped.append(f"{cfg.key} ({err})")
                continue
        else:
            outcome = run_point(cfg, n_boot=n_boot)
        fields = ("design", "n_qubits", "n_layers", "observable", "samples", "seed")
        result.add({**{k: getattr(cfg, k) for k in fields}, "key": cfg.key, **outcome})
        if out is not None:
            _save_merged(result, out, merge=merge)  # after every point: --resume loses at most the running point
    if out is not None:
        _save_merged(result, out, merge=merge, refit=True)  # fits over every point in the file, other shards' too
    else:
        fit_all(result)
    return skipped


def fit_all(result: StudyResult) -> None:
    """(Re)fit ln Var against n for every design x layers series of ``result`` into ``result.fits``."""
    result.fits = {}
    for (design, layers), pts in series(result.points).items():
        fit = fit_slope(*([p[k] for p in pts] for k in ("n_qubits", "variance", "ci_low", "ci_high")))
        if fit:
            result.fits[f"{design}|L{layers}"] = {
                "slope": fit[0],
                "stderr": fit[1],
                "intercept": fit[2],
                "n_points": len(pts),
                "exact_points": sum(p["exact"] for p in pts),
            }


def format_table(result: StudyResult) -> str:
    """The points and fitted slopes as a plain-text table."""
    lines = [f"{'design':>10} {'L':>4} {'n':>3} {'Var':>10} {'95% CI':>23} {'exact':>6} {'method':>22} {'s':>6}"]
    for (design, layers), pts in series(result.points).items():
        for p in pts:
            lines.append(
                f"{design:>10} {layers:>4} {p['n_qubits']:>3} {p['variance']:>10.3e} "
                f"[{p['ci_low']:.2e}, {p['ci_high']:.2e}] {('yes' if p['exact'] else 'est'):>6} "
                f"{p['method'][:22]:>22} {p['seconds']:>6.1f}"
            )
    lines.append(f"\nfitted slope of ln Var per qubit (reference deep baseline: {REFERENCE_SLOPE:.3f} = -ln 2)")
    for key, fit in result.fits.items():
        lines.append(
            f"  {key:>20}: {fit['slope']:+.3f} ± {1.96 * fit['stderr']:.3f} (95%), {fit['n_points']} points "
            f"({fit['exact_points']} exact)"
        )
    return "\n".join(lines)
