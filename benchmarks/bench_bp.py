"""Throughput of the barren-plateau engine against the memory-bandwidth roofline, and the paper's studies (issue 13).

Usage::

    python benchmarks/bench_bp.py --study ex2_1                        # the full ex2_1 setting, results + timing
    python benchmarks/bench_bp.py --study depth                        # the full depth sweep
    python benchmarks/bench_bp.py --study ex2_1 --slice-layers 10      # time 10-layer slices, extrapolate to L
    python benchmarks/bench_bp.py --study ex2_1 --qubits 2,16 --designs none

Settings (Yao & Hasegawa, PRA 111, 022426; their ex2_1): Var[d<Z0 Z1>/d theta_{1,1}] over 100 random circuits per
point, baseline (``none``) and per-qubit ancilla design, n = 2, 4, ..., 16. ``ex2_1`` is L = 500; ``depth`` is
L = 5, 10, 20, 50, 100, 150, 200, 250, 300, 400, 500 for every n. Full runs go through :func:`analysis.study.run_study`
(the ``qldm bp`` JSON, resumable with ``--resume``); ``--slice-layers`` runs each point with that many layers instead
and with twice as many (same rows, same engine) and extrapolates ``fixed + per_layer * L`` (the cost per layer does not
depend on the depth), so a busy machine can estimate the full studies without running them.

Throughput is counted in gate applications: per circuit row and layer ``n`` rotations and ``n - 1`` CZs, on both the
state and its tangent (``first_gradient`` propagates two states). The roofline: the engine reads and writes every state
once per dense block of up to ``analysis.engine.BLOCK`` rotations and once for the CZ chain, so its minimum time is
those bytes over the memory bandwidth, measured in the same run by a large torch copy and axpy. The script prints the
engine's achieved bytes per second as a fraction of that bandwidth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDIES = {"ex2_1": (500,), "depth": (5, 10, 20, 50, 100, 150, 200, 250, 300, 400, 500)}


def bandwidth(threads: int, mib: int = 256, repeats: int = 5) -> dict:
    """Best-of ``repeats`` copy and axpy bandwidth in GB/s (bytes read plus written) on ``mib`` MiB float64 vectors."""
    import torch

    torch.set_num_threads(threads)
    x = torch.randn(mib * 2**20 // 8, dtype=torch.float64)
    y = torch.empty_like(x)
    best = {"copy_gbs": 0.0, "axpy_gbs": 0.0}
    for _ in range(repeats):
        t = time.perf_counter()
        y.copy_(x)
        best["copy_gbs"] = max(best["copy_gbs"], 2 * x.nbytes / (time.perf_counter() - t) / 1e9)
        t = time.perf_counter()
        y.add_(x, alpha=0.5)
        best["axpy_gbs"] = max(best["axpy_gbs"], 3 * x.nbytes / (time.perf_counter() - t) / 1e9)
    return best


def rows_per_circuit(cfg) -> tuple[int, bool]:
    """Simulated rows per circuit (ancilla patterns) and whether the point is exact, as ``sample_gradients`` does."""
    if cfg.design == "none":
        return 1, True
    n_anc = cfg.n_qubits if cfg.design == "per-qubit" else 1
    branch = cfg.n_qubits + n_anc > cfg.max_exact_wires
    if not branch or 2**n_anc <= cfg.branches:
        return 2 ** (n_anc - 1), True  # the pattern bit of theta_1's ancilla is fixed on
    return cfg.branches, False


def traffic(cfg, dtype_bytes: int) -> tuple[float, float]:
    """Gate applications and the bytes the engine's passes move for one point (state and tangent)."""
    from analysis.engine import BLOCK

    rows, _ = rows_per_circuit(cfg)
    states = 2 * rows * cfg.samples  # state + tangent
    gates = states * cfg.n_layers * (2 * cfg.n_qubits - 1)
    passes = cfg.n_layers * (-(-cfg.n_qubits // BLOCK) + 1)  # dense blocks + CZ chain per layer
    return float(gates), float(states * passes * 2 * (2**cfg.n_qubits) * 2 * dtype_bytes)


def run(args: argparse.Namespace) -> dict:
    import torch

    from analysis.gradvar import PointConfig, sample_gradients
    from analysis.results import StudyResult
    from analysis.study import format_table, run_study

    torch.set_num_threads(args.threads)
    bw = bandwidth(args.threads)
    layers = args.layers or STUDIES[args.study]
    common = {
        "samples": args.samples,
        "branches": args.branches,
        "max_exact_wires": args.max_exact_wires,
        "precision": args.precision,
        "memory_bytes": int(args.memory_gb * 2**30),
    }
    grid = [(d, n, L) for d in args.designs for L in layers for n in args.qubits]
    configs = [PointConfig(design=d, n_qubits=n, n_layers=L, **common) for d, n, L in grid]
    dtype_bytes = 8 if args.precision == "float64" else 4
    rows, total_est = [], 0.0
    result = None
    if args.slice_layers is None:
        out = Path(args.out or ROOT / "benchmarks" / "results" / f"bp_{args.study}.json")
        result = StudyResult.load(out) if args.resume and out.exists() else StudyResult(settings={"study": args.study})
        result.settings.update({**common, "designs": args.designs, "qubits": args.qubits, "layers": list(layers)})
        t0 = time.perf_counter()
        run_study(result, configs, n_boot=args.bootstrap, out=out, progress=False)
        wall = time.perf_counter() - t0
        by_key = {p["key"]: p for p in result.points}
        timed = [(c, by_key[c.key]["seconds"], 1.0, c.n_layers) for c in configs if c.key in by_key]
    else:
        timed, wall = [], 0.0
        for cfg in configs:
            # two slices, s and 2s layers: time = fixed + per_layer * L, so the fixed cost is not scaled up
            times = []
            for depth in (args.slice_layers, 2 * args.slice_layers):
                t = time.perf_counter()
                sample_gradients(PointConfig(**{**cfg.__dict__, "n_layers": depth}))
                times.append(time.perf_counter() - t)
            wall += sum(times)
            slope = max(times[1] - times[0], times[1] / 2) / args.slice_layers  # load noise can shrink a difference
            est = max(times[0] - slope * args.slice_layers, 0.0) + slope * cfg.n_layers
            timed.append((cfg, est, 1.0, 2 * args.slice_layers))
    per_layer: dict[tuple[str, int], float] = {}
    for cfg, seconds, scale, measured in timed:
        gates, moved = traffic(cfg, dtype_bytes)
        est = seconds * scale
        total_est += est
        per_layer[cfg.design, cfg.n_qubits] = est / cfg.n_layers
        rows.append(
            {
                "design": cfg.design,
                "n": cfg.n_qubits,
                "L": cfg.n_layers,
                "rows_per_circuit": rows_per_circuit(cfg)[0],
                "exact": rows_per_circuit(cfg)[1],
                "seconds": est,
                "measured_layers": measured,
                "gate_apps_per_s": gates / est,
                "engine_gbs": moved / est / 1e9,
                "roofline_fraction": moved / est / 1e9 / bw["copy_gbs"],
            }
        )
    report = {
        "study": args.study,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_avg": os.getloadavg(),
        "threads": args.threads,
        "precision": args.precision,
        "bandwidth": bw,
        "slice_layers": args.slice_layers,
        "measured_wall_s": wall,
        "full_study_s": total_est,
        # the cost per layer does not depend on the depth, so each (design, n) of the depth sweep costs sum(L) layers
        "depth_sweep_estimate_s": sum(per_layer.values()) * sum(STUDIES["depth"]),
        "points": rows,
    }
    print(f"{'design':>9} {'n':>3} {'L':>4} {'rows':>5} {'s':>9} {'gate-apps/s':>12} {'GB/s':>6} {'roof':>5}")
    for r in rows:
        print(
            f"{r['design']:>9} {r['n']:>3} {r['L']:>4} {r['rows_per_circuit']:>5} {r['seconds']:>9.2f} "
            f"{r['gate_apps_per_s']:>12.3e} {r['engine_gbs']:>6.2f} {r['roofline_fraction']:>5.2f}"
        )
    kind = "estimated from slices" if args.slice_layers else "measured"
    print(f"bandwidth: copy {bw['copy_gbs']:.2f} GB/s, axpy {bw['axpy_gbs']:.2f} GB/s; load {report['load_avg']}")
    print(f"whole study ({kind}): {total_est / 60:.1f} min on {args.threads} threads")
    depth_min = report["depth_sweep_estimate_s"] / 60
    print(f"depth sweep over these designs and n, from the per-layer costs: {depth_min:.1f} min")
    if result is not None:
        print(format_table(result))
    return report


def main(argv: list[str] | None = None) -> int:
    def ints(text: str) -> list[int]:
        return [int(v) for v in text.split(",") if v]

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", choices=sorted(STUDIES), default="ex2_1")
    p.add_argument("--designs", type=lambda s: s.split(","), default=["none", "per-qubit"])
    p.add_argument("--qubits", type=ints, default=list(range(2, 17, 2)))
    p.add_argument("--layers", type=ints, default=None, help="override the study's depths")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--branches", type=int, default=8, help="sampled ancilla patterns per circuit past exact reach")
    p.add_argument("--max-exact-wires", type=int, default=16, help="widest exact (enumerated) ancilla point")
    p.add_argument("--precision", choices=["float64", "float32"], default="float64")
    p.add_argument("--memory-gb", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--slice-layers", type=int, default=None, help="time this many layers per point and extrapolate")
    p.add_argument("--out", default=None, help="study JSON (full runs); default benchmarks/results/bp_<study>.json")
    p.add_argument("--resume", action="store_true", help="continue a full run's study JSON")
    p.add_argument("--report", default=None, help="timing JSON; default benchmarks/results/bench_bp_<study>.json")
    args = p.parse_args(argv)
    report = run(args)
    suffix = "_slice" if args.slice_layers else ""
    path = Path(args.report or ROOT / "benchmarks" / "results" / f"bench_bp_{args.study}{suffix}_{args.precision}.json")
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
