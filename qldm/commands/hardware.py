"""``qldm hardware``: plan hardware sampling cost, report transpilation, check the emulator against Aer.

- ``qldm hardware plan --backend fake:FakeTorino --preset tiny [--set model.qffn.n_qubits=4] [--hardware-steps last:5]``
- ``qldm hardware transpile --backend fake:FakeTorino --n-qubits 4 [--ancilla-elimination]``
- ``qldm hardware emulate-check --backend aer-noise:FakeManilaV2 --n-qubits 2 [--shots 4000]``

Every ``--backend`` takes the one backend-name format of :mod:`hardware.backends`. Nothing is ever submitted to a
real device without ``--yes`` or an interactive confirmation.
"""

from __future__ import annotations

import argparse

from qldm.commands.common import (
    backend_name,
    config_parent,
    deprecated_alias,
    nonnegative_int,
    positive_int,
    progress_parent,
)

BACKEND_HELP = "aer | aer-noise:<FakeName> | fake:<FakeName> | ibm:<device>"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hw_command", metavar="ACTION", required=True)
    p = sub.add_parser(
        "plan",
        parents=[config_parent(), progress_parent()],
        help="PUBs, jobs, shots, 2q depth and modelled QPU time of one image",
        description="Plan one image of the run config's model (qubits via --set model...; denoising steps are "
        "the config's sample.steps).",
    )
    p.add_argument("--backend", required=True, help=BACKEND_HELP)
    blocks = p.add_argument(
        "--hardware-blocks",
        choices=["preset", "bottleneck", "all"],
        default="preset",
        help="Q-FFN blocks run on the backend (preset: the config's model.quantum_blocks)",
    )
    steps = p.add_argument(
        "--hardware-steps", default="last:5", help="denoising steps run on the backend: last:K | all | i,j,..."
    )
    p.add_argument("--shots", type=positive_int, default=1024, help="shots per circuit evaluation")
    p.add_argument("--no-guidance", action="store_true", help="no classifier-free guidance (halves tokens)")
    p.add_argument("--ancilla-elimination", action="store_true", help="plan branch circuits (ancillas sampled)")
    out = p.add_argument("--out", help="also write the plan to this JSON file")
    for old, new in (("--blocks", blocks), ("--steps", steps), ("--json", out)):
        deprecated_alias(p, old, new)

    t = sub.add_parser(
        "transpile",
        parents=[progress_parent()],
        help="transpile the Q-FFN for a backend; faithful vs ancilla-eliminated table",
    )
    t.add_argument("--backend", required=True, help=BACKEND_HELP)
    t.add_argument("--n-qubits", type=positive_int, default=4, help="data qubits of the Q-FFN circuit")
    t.add_argument("--layers", type=positive_int, default=2, help="circuit layers")
    t.add_argument(
        "--optimization-level",
        type=int,
        choices=range(4),
        default=2,
        metavar="{0,1,2,3}",
        help="Qiskit preset pass-manager level",
    )
    t.add_argument("--ancilla-elimination", action="store_true", help="also report the branch circuits")
    t.add_argument("--cache-dir", help="QPY cache of transpiled circuits")

    e = sub.add_parser(
        "emulate-check",
        parents=[progress_parent()],
        help="calibrated emulator vs Aer noisy simulation of the same device",
    )
    e.add_argument(
        "--backend", default="aer-noise:FakeManilaV2", help="aer-noise:<FakeName> or fake:<FakeName> (same device)"
    )
    e.add_argument("--n-qubits", type=positive_int, default=2, help="data qubits of the Q-FFN circuit")
    e.add_argument("--tokens", type=positive_int, default=8, help="random input tokens compared")
    e.add_argument("--shots", type=positive_int, default=4000, help="shots of the Aer reference run")
    e.add_argument("--ancilla-elimination", action="store_true", help="emulate the branch circuits instead")
    e.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the inputs, weights and shots")
    for q in (p, t, e):
        q.add_argument("--yes", action="store_true", help="confirm use of a real device (ibm:)")


def _check_real(backend: str, yes: bool) -> None:
    """Refuse an ``ibm:`` backend unless ``--yes`` or an interactive "y" confirms it."""
    if backend.startswith("ibm:") and not yes:
        import sys

        answer = input(f"Use the real device {backend}? [y/N] ").strip().lower() if sys.stdin.isatty() else ""
        if answer not in ("y", "yes"):
            raise ValueError(f"{backend} is a real device: pass --yes to confirm")


def _plan(args: argparse.Namespace) -> int:
    import json

    from hardware.sampling import plan
    from qldm.commands.common import resolve_config

    cfg = resolve_config(args)
    result = plan(
        cfg.model,
        args.backend,
        blocks=cfg.model.quantum_blocks if args.hardware_blocks == "preset" else args.hardware_blocks,
        steps=args.hardware_steps,
        total_steps=cfg.sample.steps,
        guidance=not args.no_guidance,
        shots=args.shots,
        ancilla_elimination=args.ancilla_elimination,
    )
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def _transpile(args: argparse.Namespace) -> int:
    from hardware.checks import transpile_rows

    spec, rows = transpile_rows(
        args.backend,
        n_qubits=args.n_qubits,
        n_layers=args.layers,
        optimization_level=args.optimization_level,
        ancilla_elimination=args.ancilla_elimination,
        cache_dir=args.cache_dir,
    )
    print(f"{spec.name} on {args.backend}")
    print(f"{'form':<16}{'qubits':>7}{'depth':>7}{'2q gates':>10}{'2q depth':>10}{'est. fidelity':>15}  layout")
    for form, r in rows:
        print(
            f"{form:<16}{r.logical_qubits:>7}{r.depth:>7}{r.two_qubit_gates:>10}{r.two_qubit_depth:>10}"
            f"{r.estimated_fidelity:>15.4f}  {list(r.layout)}"
        )
    return 0


def _emulate_check(args: argparse.Namespace) -> int:
    from hardware.checks import emulator_check

    backend_name(args.backend, kinds=("aer-noise", "fake"))
    r = emulator_check(
        args.backend,
        n_qubits=args.n_qubits,
        tokens=args.tokens,
        shots=args.shots,
        ancilla_elimination=args.ancilla_elimination,
        seed=args.seed,
    )
    print(f"{r['circuit']} on {r['backend']}, {r['tokens']} tokens, Aer {r['shots']} shots")
    print(f"mean |exact - aer|    {r['exact_err']:.4f}")
    print(f"mean |emulator - aer| {r['emulator_err']:.4f} (shot noise ~ {r['shot_floor']:.4f})")
    ratio = r["aer_s"] / max(r["emulator_s"], 1e-9)
    print(f"time emulator {r['emulator_s']:.4f} s, Aer {r['aer_s']:.3f} s, ratio {ratio:.0f}x")
    return 0


def run(args: argparse.Namespace) -> int:
    backend_name(args.backend)
    _check_real(args.backend, args.yes)
    return {"plan": _plan, "transpile": _transpile, "emulate-check": _emulate_check}[args.hw_command](args)
