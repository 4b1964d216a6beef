"""``qldm expressivity``: output spread and input-gradient norms of the Q-FFN against n, and its bond dimension."""

from __future__ import annotations

import argparse

from qldm.commands.common import (
    deprecated_alias,
    int_at_least,
    int_list,
    nonnegative_int,
    out_parent,
    positive_int,
    progress_parent,
    word_list,
)

__all__ = ["add_arguments", "parents", "run"]


def parents() -> list[argparse.ArgumentParser]:
    return [out_parent(help="JSON; PNGs go next to it", default="expressivity.json"), progress_parent()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (cheap)."""
    qubits = parser.add_argument("--n-qubits", type=int_list, default=[2, 4, 6, 8], help="data qubit counts")
    deprecated_alias(parser, "--qubits", qubits)
    parser.add_argument("--ancillas", type=word_list, default=["none", "per-qubit"], help="none, per-qubit, shared")
    parser.add_argument("--readout", type=word_list, default=["ring", "local"], help="ring (original) and/or local")
    parser.add_argument("--layers", type=int_list, default=[2], help="circuit layers")
    parser.add_argument("--init", type=word_list, default=["uniform", "small"], help="uniform and/or small")
    parser.add_argument("--inputs", type=int_at_least(2), default=64, help="inputs x ~ N(0,1) per weight draw (>= 2)")
    parser.add_argument("--weight-draws", type=positive_int, default=3, help="random weight sets per configuration")
    parser.add_argument(
        "--max-exact-wires", type=positive_int, default=12, help="statevector up to here, then tensornet"
    )
    parser.add_argument("--sim-qubits", type=positive_int, default=6, help="n for the Schmidt-rank study (2n wires)")
    parser.add_argument("--sim-layers", type=int_list, default=[1, 2, 3, 4], help="layers for the Schmidt-rank study")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the inputs and weights")


def run(args: argparse.Namespace) -> int:
    """Run both studies, print tables, write JSON and two PNGs; returns 0."""
    import json
    from pathlib import Path

    from analysis.expressivity import (
        VERDICT,
        check_simulability_size,
        contraction_width,
        plot_sensitivity,
        plot_simulability,
        sensitivity_sweep,
        simulability,
    )
    from analysis.results import package_versions, utc_now

    check_simulability_size(args.sim_qubits)  # every check before the sweep, which takes minutes
    points = sensitivity_sweep(
        args.n_qubits,
        ancillas=args.ancillas,
        readouts=args.readout,
        layers=args.layers,
        inits=args.init,
        inputs=args.inputs,
        weight_draws=args.weight_draws,
        seed=args.seed,
        max_exact_wires=args.max_exact_wires,
        progress=not args.no_progress,
    )
    ranks = simulability(args.sim_qubits, args.sim_layers, seed=args.seed)
    try:
        widths = contraction_width(max(args.n_qubits), args.sim_layers)
    except Exception as err:  # noqa: BLE001 - the tensornet planner is optional for this report
        widths = [{"error": f"{type(err).__name__}: {err}"}]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "sensitivity": [p.to_dict() for p in points],
        "schmidt_rank": ranks,
        "contraction_width": widths,
        "verdict": VERDICT,
        "settings": {k: v for k, v in vars(args).items() if k not in ("func", "command")},
        "versions": package_versions(),
        "created": utc_now(),
    }
    out.write_text(json.dumps(data, indent=1, default=str))
    plot_sensitivity(points, out.with_name(out.stem + "_sensitivity.png"))
    plot_simulability(ranks, out.with_name(out.stem + "_simulability.png"))
    print(
        f"{'ancillas':>9} {'readout':>7} {'L':>2} {'init':>7} {'n':>3} {'spread med':>10} {'spread max':>10} "
        f"{'|grad| med':>10} {'exec':>11}"
    )
    for p in points:
        d = p.to_dict()
        print(
            f"{p.ancillas:>9} {p.readout:>7} {p.n_layers:>2} {p.init:>7} {p.n_qubits:>3} "
            f"{d['spread_median']:>10.4f} {d['spread_max']:>10.4f} {d['grad_norm_median']:>10.4f} "
            f"{p.executor:>11}"
        )
    print(f"\nSchmidt rank across a ring cut, n={args.sim_qubits} (2n wires), per-qubit ancillas:")
    for r in ranks:
        print(f"  L={r['n_layers']}: rank {r['schmidt_rank']} (max {r['max_rank']})")
    for w in widths:
        if "largest" in w:
            print(
                f"  tensornet plan n={max(args.n_qubits)} L={w['n_layers']}: largest intermediate "
                f"{w['largest']:.0f}, {w['flops']:.3g} flops/token (statevector 2**{2 * max(args.n_qubits)})"
            )
    print("\n" + VERDICT)
    print(f"wrote {out}")
    return 0


def output_lock(args: argparse.Namespace):
    """One writer per ``--out`` file."""
    from qldm.train.runlock import RunLock

    return RunLock.for_file(args.out)
