"""``qldm bp``: the barren-plateau gradient-variance study (table, JSON, semilog PNG; ``--resume``, ``--noise``)."""

from __future__ import annotations

import argparse

from qldm.commands.common import (
    backend_name,
    deprecated_alias,
    int_at_least,
    int_list,
    nonnegative_int,
    out_parent,
    positive_float,
    positive_int,
    progress_parent,
    reading,
)

__all__ = ["add_arguments", "parents", "run"]


def parents() -> list[argparse.ArgumentParser]:
    return [
        out_parent(
            help="result JSON, never overwritten (see --resume); the PNG goes next to it", default="bp_result.json"
        ),
        progress_parent(),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (cheap: no heavy imports)."""
    parser.add_argument("--design", default="none,per-qubit", help="comma list of none, per-qubit, shared, qffn")
    qubits = parser.add_argument("--n-qubits", type=int_list, default=[2, 4, 6], help="data qubit counts, e.g. 2,4,6")
    deprecated_alias(parser, "--qubits", qubits)
    parser.add_argument("--layers", type=int_list, default=[5, 50], help="layer counts, e.g. 5,50,500")
    parser.add_argument("--samples", type=int_at_least(2), default=100, help="random circuits per point (>= 2)")
    parser.add_argument(
        "--observable", default="z0z1", choices=["z0z1", "global", "local"], help="measured observable O"
    )
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the random circuits")
    parser.add_argument("--pooled", action="store_true", help="also the variance pooled over all parameters")
    parser.add_argument(
        "--branches", type=positive_int, default=8, help="sampled ancilla patterns per circuit past reach"
    )
    parser.add_argument("--max-exact-wires", type=positive_int, default=20, help="widest exact statevector")
    parser.add_argument(
        "--memory-gb",
        type=positive_float,
        default=1.0,
        help="memory budget: autograd's stored states before the shift rule; a point whose single statevector "
        "exceeds it is refused",
    )
    parser.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument(
        "--budget-s", type=positive_float, default=None, help="stop starting new points after this time"
    )
    parser.add_argument(
        "--noise", default=None, help="aer-noise:<FakeName> or fake:<FakeName>: that device's noise model (Aer)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the points of an existing --out file")
    parser.add_argument(
        "--shard",
        type=shard_spec,
        default=None,
        help="I/M: run only shard I of M (cost-balanced); M processes, one per core, share one --out file and, like "
        "--resume, keep and skip the points already in it",
    )


def shard_spec(text: str) -> tuple[int, int]:
    """``"I/M"`` with ``1 <= I <= M`` as ``(I, M)``.

    Raises:
        argparse.ArgumentTypeError: On any other text.
    """
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like 1/2, got {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"shard must be I/M with 1 <= I <= M, got {text!r}")
    return index, count


def run(args: argparse.Namespace) -> int:
    """Run the study; returns 0.

    Raises:
        ValueError: On an unknown design or noise backend, an ``--out`` that is not ``.json`` or already exists
            without ``--resume``/``--shard``, or a ``--resume`` file run with other settings.
    """
    from pathlib import Path

    from analysis.gradvar import DESIGNS
    from analysis.plots import plot_depth, plot_variance
    from analysis.results import StudyResult
    from analysis.study import format_table, make_configs, run_study, shard

    designs = [d.strip() for d in args.design.split(",") if d.strip()]
    bad = [d for d in designs if d not in DESIGNS]
    if bad or not designs:
        raise ValueError(f"unknown design(s) {bad}; choose from {DESIGNS}")
    if args.noise:
        backend_name(args.noise, kinds=("aer-noise", "fake"))
    settings = {
        "designs": designs,
        "qubits": args.n_qubits,
        "layers": args.layers,
        "samples": args.samples,
        "observable": args.observable,
        "seed": args.seed,
        "pooled": args.pooled,
        "branches": args.branches,
        "max_exact_wires": args.max_exact_wires,
        "noise": args.noise,
        "bootstrap": args.bootstrap,
    }
    out = Path(args.out)
    if out.suffix.lower() != ".json":  # the study is resumable JSON; a table in another format would be a lie
        raise ValueError(f"--out takes a .json study file (the PNG goes next to it), got {out}")
    if out.exists() and not (args.resume or args.shard):
        raise ValueError(f"{out} already holds a study; pass --resume to continue it or choose a new --out")
    if (args.resume or args.shard) and out.exists():
        with reading(out):
            result = StudyResult.load(out)
        if result.settings.get("observable") != args.observable or result.settings.get("noise") != args.noise:
            raise ValueError(f"{out} was run with other observable/noise settings; use another --out")
        result.settings = {**result.settings, **settings}
    else:
        result = StudyResult(settings=settings)
    configs = make_configs(
        designs,
        args.n_qubits,
        args.layers,
        observable=args.observable,
        samples=args.samples,
        seed=args.seed,
        pooled=args.pooled,
        branches=args.branches,
        max_exact_wires=args.max_exact_wires,
        memory_bytes=int(args.memory_gb * 2**30),
    )
    if args.shard:
        configs = shard(configs, *args.shard)
    skipped = run_study(
        result,
        configs,
        n_boot=args.bootstrap,
        noise=args.noise,
        budget_s=args.budget_s,
        out=out,
        progress=not args.no_progress,
        merge=bool(args.resume or args.shard),
    )
    png = out.with_suffix(".png")
    title = f"Gradient variance, O={args.observable}" + (f", noise {args.noise}" if args.noise else "")
    plot_variance(result, png, title=title)
    if len({p["n_layers"] for p in result.points}) > 2:  # a depth sweep: variance against L, too
        depth_png = out.with_name(out.stem + "_depth.png")
        plot_depth(result, depth_png, title=title)
        png = f"{png} and {depth_png}"
    print(format_table(result))
    if skipped:
        print(f"\n{len(skipped)} point(s) not run (budget spent or device too small): {', '.join(skipped)}")
    print(f"wrote {out} and {png}")
    return 0


def output_lock(args: argparse.Namespace):
    """One writer per ``--out`` file (a study merged by two processes would lose points)."""
    from qldm.train.runlock import RunLock

    return RunLock.for_file(args.out)
