"""Throughput of the barren-plateau engine against measured roofs, and the paper's studies (issue 13).

Usage::

    python benchmarks/bench_bp.py --study ex2_1 --slice-layers 4       # time 4- and 8-layer slices, project the study
    python benchmarks/bench_bp.py --study ex2_1 --slice-layers 4 --root /path/to/older/checkout   # an older engine
    python benchmarks/bench_bp.py --study ex2_1 --shard 1/2 &          # the full study: one process per core, one
    python benchmarks/bench_bp.py --study ex2_1 --shard 2/2 &          # shared, resumable result file

Settings (Yao & Hasegawa, PRA 111, 022426; their ex2_1): Var[d<Z0 Z1>/d theta_{1,1}] over 100 random circuits per
point, baseline (``none``) and per-qubit ancilla design, n = 2, 4, ..., 16. ``ex2_1`` is L = 500; ``depth`` is
L = 5, 10, 20, 50, 100, 150, 200, 250, 300, 400, 500 for every n. Full runs go through :func:`analysis.study.run_study`
(the ``qldm bp`` JSON, saved after every point, ``--resume`` skips saved points, ``--shard I/M`` runs a cost-balanced
part so M processes share the file). ``--slice-layers s`` runs each point with s and 2s layers instead (same circuits
and rows) and projects ``fixed + per_layer * L`` for every depth of both studies, in process CPU seconds (robust on a
shared machine) and wall seconds. The 2-core projection is the longest of two cost-balanced shards (as run above).

Work is counted per engine run of a point: the baseline is one n-qubit run; the per-qubit design is ``n`` chain pieces
of 2..n qubits plus the n-qubit all-on run (:func:`analysis.engine.per_qubit_first_gradient`), or, on an engine without
the chain cut, its pattern rows. Each run propagates two states per row (state and theta_1 tangent). A gate application
is one rotation or CZ on one state; bytes are one read and write of the state per dense block of up to
``analysis.engine.BLOCK`` rotations and per CZ chain; flops are those of the complex block products. The roofs are
measured in the same run: memory bandwidth by a large torch copy and triad, compute by a large complex matmul
(complex64 or complex128, as the run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from _machine import git_commit  # benchmarks/ is sys.path[0] when this file runs as a script

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {"ex2_1": (500,), "depth": (5, 10, 20, 50, 100, 150, 200, 250, 300, 400, 500)}


def roofs(threads: int, precision: str, mib: int = 256, repeats: int = 5) -> dict:
    """Best-of-``repeats`` copy and triad bandwidth (GB/s, bytes read plus written) on ``mib`` MiB float32 vectors, and
    the complex matmul rate (GFLOP/s, 1024 x 1024) in the engine's complex dtype for ``precision``."""
    import torch

    torch.set_num_threads(threads)
    x = torch.randn(mib * 2**20 // 4)
    y, z = torch.empty_like(x), torch.randn_like(x)
    a = torch.randn(1024, 1024, dtype=torch.complex64 if precision == "float32" else torch.complex128)
    best = {"copy_gbs": 0.0, "triad_gbs": 0.0, "cgemm_gflops": 0.0}
    for _ in range(repeats):
        t = time.perf_counter()
        y.copy_(x)
        best["copy_gbs"] = max(best["copy_gbs"], 2 * x.nbytes / (time.perf_counter() - t) / 1e9)
        t = time.perf_counter()
        torch.add(x, z, alpha=0.5, out=y)
        best["triad_gbs"] = max(best["triad_gbs"], 3 * x.nbytes / (time.perf_counter() - t) / 1e9)
        t = time.perf_counter()
        a @ a
        best["cgemm_gflops"] = max(best["cgemm_gflops"], 8 * 1024**3 / (time.perf_counter() - t) / 1e9)
    return best


def pieces(cfg) -> list[tuple[int, int]]:
    """``(width, rows per circuit)`` of each engine run of a point, as ``sample_gradients`` does it."""
    n = cfg.n_qubits
    if cfg.design == "none":
        return [(n, 1)]
    if getattr(cfg, "chain_cut", False):
        return [(n, 1)] + [(m, 1) for m in range(2, n + 1)]
    branch = 2 * n > cfg.max_exact_wires
    if not branch or 2**n <= cfg.branches:
        return [(n, 2 ** (n - 1))]  # every pattern, theta_1's ancilla bit fixed on
    return [(n, cfg.branches)]


def work(cfg, dtype_bytes: int) -> dict:
    """Gate applications, bytes moved and block-product flops of one point (both states of every row)."""
    from analysis.engine import BLOCK

    gates = moved = flops = 0.0
    for m, rows in pieces(cfg):
        states = 2 * rows * cfg.samples * cfg.n_layers
        blocks = [min(BLOCK, m - lo) for lo in range(0, m, BLOCK)]
        gates += states * (2 * m - 1)
        moved += states * (len(blocks) + 1) * 2 * 2**m * 2 * dtype_bytes  # read + write, re + im
        flops += states * sum(8 * 2**m * 2**k for k in blocks)  # complex multiply-add = 8 flops
    return {"gates": gates, "bytes": moved, "flops": flops}


def time_point(cfg, layers: int) -> tuple[float, float]:
    """Wall and process CPU seconds of ``sample_gradients`` for ``cfg`` at ``layers`` layers."""
    from analysis.gradvar import PointConfig, sample_gradients

    t, c = time.perf_counter(), time.process_time()
    sample_gradients(PointConfig(**{**cfg.__dict__, "n_layers": layers}))
    return time.perf_counter() - t, time.process_time() - c


def two_core_makespan(costs: list[float]) -> float:
    """Longest of two greedy longest-first shards (as ``analysis.study.shard`` splits a study)."""
    loads = [0.0, 0.0]
    for c in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += c
    return max(loads)


def slices(args: argparse.Namespace, configs: list, roof: dict, dtype_bytes: int) -> dict:
    """Time every (design, n) at s and 2s layers; project its points and both studies (CPU and wall seconds)."""
    rows, proj, fits = [], {}, {}
    for cfg in configs:
        s = args.slice_layers
        if (cfg.design, cfg.n_qubits) not in fits:  # the cost per layer does not depend on the depth: time once
            (w1, c1), (w2, c2) = time_point(cfg, s), time_point(cfg, 2 * s)
            fit = {}
            for kind, (t1, t2) in {"cpu": (c1, c2), "wall": (w1, w2)}.items():
                per_layer = max(t2 - t1, t2 / 2) / s  # load noise can shrink the difference
                fit[kind] = (max(t1 - per_layer * s, 0.0), per_layer)
            for study, depths in STUDIES.items():
                for kind, (fixed, per_layer) in fit.items():
                    proj.setdefault((study, kind), []).extend(fixed + per_layer * L for L in depths)
            fits[cfg.design, cfg.n_qubits] = fit
        fit = fits[cfg.design, cfg.n_qubits]
        full = {"cpu": fit["cpu"][0] + fit["cpu"][1] * cfg.n_layers}
        full["wall"] = fit["wall"][0] + fit["wall"][1] * cfg.n_layers
        w = work(cfg, dtype_bytes)
        rows.append(
            {
                "design": cfg.design,
                "n": cfg.n_qubits,
                "L": cfg.n_layers,
                "pieces": pieces(cfg),
                "cpu_s": full["cpu"],
                "wall_s": full["wall"],
                "cpu_per_layer_s": fit["cpu"][1],
                "cpu_fixed_s": fit["cpu"][0],
                "gate_apps_per_cpu_s": w["gates"] / full["cpu"],
                "engine_gbs": w["bytes"] / full["cpu"] / 1e9,
                "bandwidth_fraction": w["bytes"] / full["cpu"] / 1e9 / roof["copy_gbs"],
                "engine_gflops": w["flops"] / full["cpu"] / 1e9,
                "cgemm_fraction": w["flops"] / full["cpu"] / 1e9 / roof["cgemm_gflops"],
            }
        )
        r = rows[-1]
        print(
            f"{cfg.design:>9} {cfg.n_qubits:>3} {cfg.n_layers:>4} {full['cpu']:>9.2f} {full['wall']:>9.2f} "
            f"{r['gate_apps_per_cpu_s']:>11.3e} {r['engine_gbs']:>6.2f} {r['bandwidth_fraction']:>5.2f} "
            f"{r['engine_gflops']:>7.1f} {r['cgemm_fraction']:>5.2f}",
            flush=True,
        )
    out = {"points": rows}
    for (study, kind), costs in proj.items():
        out[f"{study}_{kind}_s"] = sum(costs)
        if kind == "cpu":
            out[f"{study}_two_core_s"] = two_core_makespan(costs)
    return out


def full_run(args: argparse.Namespace, configs: list, common: dict, layers) -> dict:
    """Run the study into its result file (resumable, shardable) and report the measured point times."""
    from analysis.results import StudyResult
    from analysis.study import format_table, run_study, shard

    out = Path(args.out or ROOT / "benchmarks" / "results" / f"bp_{args.study}.json")
    if args.shard:
        configs = shard(configs, *args.shard)
    resume = (args.resume or args.shard) and out.exists()
    result = StudyResult.load(out) if resume else StudyResult(settings={"study": args.study})
    result.settings.update(
        {**common, "study": args.study, "designs": args.designs, "qubits": args.qubits, "layers": list(layers)}
    )
    c = time.process_time()
    run_study(result, configs, n_boot=args.bootstrap, out=out, progress=False, merge=bool(args.resume or args.shard))
    print(format_table(result))
    return {"result_file": str(out), "cpu_s": time.process_time() - c, "points": len(result.points)}


def main(argv: list[str] | None = None) -> int:
    def ints(text: str) -> list[int]:
        return [int(v) for v in text.split(",") if v]

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", choices=sorted(STUDIES), default="ex2_1")
    p.add_argument("--designs", type=lambda s: s.split(","), default=["none", "per-qubit"])
    p.add_argument("--qubits", type=ints, default=list(range(2, 17, 2)))
    p.add_argument("--layers", type=ints, default=None, help="override the study's depths")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--branches", type=int, default=8, help="sampled patterns per circuit (engines without the cut)")
    p.add_argument("--max-exact-wires", type=int, default=16, help="widest enumerated ancilla point (likewise)")
    p.add_argument("--precision", choices=["float64", "float32"], default="float64")
    p.add_argument("--memory-gb", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--slice-layers", type=int, default=None, help="time s and 2s layers per point and project")
    p.add_argument("--root", default=str(ROOT), help="checkout whose analysis/ is timed (default: this one)")
    p.add_argument("--out", default=None, help="study JSON (full runs); default benchmarks/results/bp_<study>.json")
    p.add_argument("--resume", action="store_true", help="continue a full run's study JSON")
    p.add_argument("--shard", default=None, help="I/M: run shard I of M of a full run into the shared study JSON")
    p.add_argument("--report", default=None, help="timing JSON; default benchmarks/results/bench_bp_<...>.json")
    args = p.parse_args(argv)
    args.shard = tuple(int(v) for v in args.shard.split("/")) if args.shard else None
    sys.path.insert(0, args.root)

    import torch

    from analysis.gradvar import PointConfig

    torch.set_num_threads(args.threads)
    load_start, t0, c0 = os.getloadavg(), time.perf_counter(), time.process_time()
    roof = roofs(args.threads, args.precision)
    layers = args.layers or STUDIES[args.study]
    common = {
        "samples": args.samples,
        "branches": args.branches,
        "max_exact_wires": args.max_exact_wires,
        "precision": args.precision,
        "memory_bytes": int(args.memory_gb * 2**30),
    }
    configs = [
        PointConfig(design=d, n_qubits=n, n_layers=L, **common)
        for d in args.designs
        for L in layers
        for n in args.qubits
    ]
    print(
        f"{'design':>9} {'n':>3} {'L':>4} {'cpu s':>9} {'wall s':>9} {'gates/cpu-s':>11} {'GB/s':>6} {'bw':>5} "
        f"{'GFLOP/s':>7} {'gemm':>5}"
    )
    body = slices(args, configs, roof, 8 if args.precision == "float64" else 4) if args.slice_layers else None
    if body is None:
        body = full_run(args, configs, common, layers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    report = {
        "study": args.study,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "engine_root": str(Path(args.root).resolve()),
        "commit": git_commit(args.root) or "unknown",  # the commit of the code timed, which may be another checkout
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "cpu_share": cpu / wall,  # this process's CPU seconds per wall second: the load it ran under
        "threads": args.threads,
        "precision": args.precision,
        "roofs": roof,
        "slice_layers": args.slice_layers,
        "run_wall_s": wall,
        "run_cpu_s": cpu,
        **body,
    }
    print(
        f"roofs: copy {roof['copy_gbs']:.1f} GB/s, triad {roof['triad_gbs']:.1f} GB/s, cgemm "
        f"{roof['cgemm_gflops']:.0f} GFLOP/s; load {load_start} -> {report['load_avg_end']}, cpu share {cpu / wall:.2f}"
    )
    if args.slice_layers:
        for study in STUDIES:
            print(
                f"{study}: projected {report[f'{study}_cpu_s'] / 60:.1f} CPU-min on {args.threads} thread(s), "
                f"{report[f'{study}_two_core_s'] / 60:.1f} min on 2 cores (two shards), "
                f"{report[f'{study}_wall_s'] / 60:.1f} min wall at this load"
            )
    tag = f"_slice_{args.precision}" if args.slice_layers else ""
    tag += "_" + Path(args.root).resolve().name if args.root != str(ROOT) else ""
    tag += f"_shard{args.shard[0]}of{args.shard[1]}" if args.shard else ""
    path = Path(args.report or ROOT / "benchmarks" / "results" / f"bench_bp_{args.study}{tag}.json")
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
