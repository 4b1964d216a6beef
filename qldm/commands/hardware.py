"""``qldm hardware``: plan hardware sampling cost, report transpilation, check the emulator against Aer.

- ``qldm hardware plan --backend fake:FakeTorino --preset tiny [--set model.qffn.n_qubits=4] [--hardware-steps last:5]``
- ``qldm hardware transpile --backend fake:FakeTorino --n-qubits 4 [--ancilla-elimination]``
- ``qldm hardware emulate-check --backend aer-noise:FakeManilaV2 --n-qubits 2 [--shots 4000]``
- ``qldm hardware study --run RUN --backend fake:FakeTorino --shots 64,1024 --hardware-steps last:5,all --n 100
  --out DIR``: the same prompts and seeds sampled with the circuit exact, with shots, on the calibrated emulator
  (with and without ancilla elimination) and on Aer's noisy simulation where it fits (:mod:`hardware.study`)

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
    s = sub.add_parser(
        "study",
        parents=[progress_parent()],
        help="what a device does to the pictures: images under exact, shot-noise and device-noise conditions",
        description="Sample the same prompts and seeds of a trained run with its circuit run exactly, with shot "
        "noise, on the calibrated emulator of --backend (faithful and ancilla-eliminated) and on Aer's noisy "
        "simulation where the circuit is narrow enough; FID, HF ratio, hair colour, pixel change against exact "
        "and modelled QPU seconds per image go to OUT/study.json, the curves to OUT/study.png. A rerun skips the "
        "conditions already sampled.",
    )
    s.add_argument("--run", required=True, help="a finished run whose model runs a circuit")
    s.add_argument("--backend", required=True, help="a calibrated backend: fake:<FakeName> or ibm:<device>")
    s.add_argument("--shots", default="64,256,1024,4096", help="shot counts, comma-separated (default %(default)s)")
    s.add_argument(
        "--hardware-steps",
        default="last:5,all",
        help="denoising steps that run on the device, one study axis per selector: last:K | all | i-j "
        "(default %(default)s)",
    )
    s.add_argument(
        "--kinds",
        default="exact,shots,emulator,emulator-elim,aer",
        help="conditions to run (default %(default)s; aer only where the circuit is narrow enough)",
    )
    s.add_argument("--n", type=positive_int, default=100, help="images per condition (default %(default)s)")
    s.add_argument("--seed", type=nonnegative_int, default=0, help="sampling seed (default %(default)s)")
    s.add_argument("--batch-size", type=positive_int, default=50, help="images per pipeline call (default %(default)s)")
    s.add_argument("--out", required=True, help="study folder")
    for q in (p, t, e, s):
        q.add_argument("--yes", action="store_true", help="confirm use of a real device (ibm:)")


def _check_real(backend: str, yes: bool) -> None:
    """Refuse an ``ibm:`` backend unless ``--yes`` or an interactive "y" confirms it."""
    if backend.startswith("ibm:") and not yes:
        import sys

        answer = input(f"Use the real device {backend}? [y/N] ").strip().lower() if sys.stdin.isatty() else ""
        if answer not in ("y", "yes"):
            raise ValueError(f"{backend} is a real device: pass --yes to confirm")


def _preset_blocks(model) -> str:
    """The hardware blocks of the config's own placement: its mid block only, or every circuit slot it has."""
    return "bottleneck" if model.quantum_blocks == "bottleneck" and not model.quanv_patch else "all"


def _plan(args: argparse.Namespace) -> int:
    import json

    from hardware.sampling import plan
    from qldm.commands.common import resolve_config

    cfg = resolve_config(args)
    result = plan(
        cfg.model,
        args.backend,
        blocks=_preset_blocks(cfg.model) if args.hardware_blocks == "preset" else args.hardware_blocks,
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


def _study(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hardware.study import KINDS, parse_shots, parse_step_selectors
    from qldm.commands.common import reading, word_list
    from qldm.config import load_config

    shots = parse_shots(args.shots)
    kinds = word_list(args.kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"--kinds takes {list(KINDS)}, got {args.kinds!r}")
    with reading(args.run):
        cfg = load_config(Path(args.run) / "pipeline" if (Path(args.run) / "pipeline").is_dir() else args.run)
    if not cfg.model.uses_circuit:
        raise ValueError(f"{args.run}: its model has no circuit (no Q-FFN or quanvolution runs one)")
    steps = parse_step_selectors(args.hardware_steps, cfg.sample.steps)
    if args.backend.startswith("ibm:") and not args.yes:
        return _print_cost(cfg, args.backend, shots, steps)
    from hardware.backends import resolve_backend

    if not resolve_backend(args.backend).has_calibration:
        raise ValueError(
            f"{args.backend} has no calibration data; a device study needs fake:<FakeName> or ibm:<device>"
        )
    from hardware.study_run import run_study

    study = run_study(args.run, backend=args.backend, kinds=kinds, shots=shots, steps=steps, n=args.n, out=args.out,
                      seed=args.seed, batch_size=args.batch_size, show_progress=not args.no_progress)  # fmt: skip
    print(f"{'condition':<34}{'FID':>8}{'pixel change':>14}{'QPU s/image':>13}")
    for r in study["conditions"]:
        fid = f"{r['fid']:.2f}" if r["fid"] is not None else "-"
        print(f"{r['key']:<34}{fid:>8}{r['pixel_change']['mean']:>14.3f}{r['qpu_seconds_per_image']:>13.1f}")
    print(f"wrote {Path(args.out) / 'study.json'} and study.png")
    return 0


def _print_cost(cfg, backend: str, shots: list[int], steps: list[str]) -> int:
    """What a study on a real device would cost, from the timing model; nothing is submitted."""
    from hardware.sampling import plan
    from hardware.study import steps_selector

    print(f"{backend} is a real device: nothing submitted without --yes. Modelled QPU time per image:")
    for sel in steps:
        for s in shots:
            p = plan(cfg.model, backend, blocks="all", steps=steps_selector(sel), total_steps=cfg.sample.steps,
                     shots=s)  # fmt: skip
            print(f"  steps {sel}, {s} shots: {p['pubs']} PUBs, {p['qpu_time_model_s']:.0f} s (a model)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.hw_command == "study" and args.backend.startswith("ibm:"):
        backend_name(args.backend)
        return _study(args)  # prints the modelled cost and submits nothing without --yes
    backend_name(args.backend)
    _check_real(args.backend, args.yes)
    handlers = {"plan": _plan, "transpile": _transpile, "emulate-check": _emulate_check, "study": _study}
    return handlers[args.hw_command](args)


def output_lock(args: argparse.Namespace):
    """``study`` holds its ``--out`` folder and ``plan --out FILE`` that file. ``transpile`` writes only to the shared
    circuit cache, which is safe for concurrent processes (unique temporary names, atomic renames, entries checked on
    read), and ``emulate-check`` writes nothing."""
    from qldm.train.runlock import RunLock

    if args.hw_command == "study":
        return RunLock(args.out)
    return RunLock.for_file(args.out) if args.hw_command == "plan" and args.out else None
