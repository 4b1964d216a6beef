"""``qldm hardware``: plan hardware sampling cost, report transpilation, check the emulator against Aer.

- ``qldm hardware plan --backend fake:FakeTorino --preset tiny [--steps last:5]``
- ``qldm hardware transpile --backend fake:FakeTorino --n-qubits 4 [--ancilla-elimination]``
- ``qldm hardware emulate-check --backend FakeTorino --n-qubits 2 [--shots 4000]``

Nothing is ever submitted to a real device without ``--yes`` or an interactive confirmation.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hw_command", metavar="ACTION", required=True)
    p = sub.add_parser("plan", help="PUBs, jobs, shots, 2q depth and modelled QPU time of one image")
    p.add_argument("--backend", required=True, help="aer | aer-noise:<Fake> | fake:<Fake> | ibm:<device>")
    p.add_argument("--preset", default="tiny", help="run preset whose model is planned (tiny, anime64, paper)")
    p.add_argument("--n-qubits", type=int, help="override the preset's data qubits")
    p.add_argument("--blocks", choices=["preset", "bottleneck", "all"], default="preset")
    p.add_argument("--steps", default="last:5", help="last:K | all | i,j,...")
    p.add_argument("--total-steps", type=int, help="denoising steps (default: the preset's)")
    p.add_argument("--shots", type=int, default=1024)
    p.add_argument("--no-guidance", action="store_true", help="no classifier-free guidance (halves tokens)")
    p.add_argument("--ancilla-elimination", action="store_true")
    p.add_argument("--json", help="also write the plan to this JSON file")

    t = sub.add_parser("transpile", help="transpile the Q-FFN for a backend; faithful vs ancilla-eliminated table")
    t.add_argument("--backend", required=True)
    t.add_argument("--n-qubits", type=int, default=4)
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--optimization-level", type=int, default=2)
    t.add_argument("--ancilla-elimination", action="store_true", help="also report the branch circuits")
    t.add_argument("--cache-dir", help="QPY cache of transpiled circuits")

    e = sub.add_parser("emulate-check", help="calibrated emulator vs Aer noisy simulation of the same device")
    e.add_argument("--backend", default="FakeManilaV2", help="fake backend name (FakeXxx)")
    e.add_argument("--n-qubits", type=int, default=2)
    e.add_argument("--tokens", type=int, default=8)
    e.add_argument("--shots", type=int, default=4000)
    e.add_argument("--ancilla-elimination", action="store_true")
    e.add_argument("--seed", type=int, default=0)
    for q in (p, t, e):
        q.add_argument("--yes", action="store_true", help="confirm use of a real device (ibm:)")


def _check_real(backend: str, yes: bool) -> None:
    if backend.startswith("ibm:") and not yes:
        import sys

        if not sys.stdin.isatty() or input(f"Use the real device {backend}? [y/N] ").strip().lower() not in (
            "y",
            "yes",
        ):
            raise ValueError(f"{backend} is a real device: pass --yes to confirm")


def _plan(args: argparse.Namespace) -> int:
    import dataclasses

    from hardware.sampling import plan
    from qldm.config import make_preset

    cfg = make_preset(args.preset)
    model = (
        cfg.model
        if args.n_qubits is None
        else dataclasses.replace(cfg.model, qffn=dataclasses.replace(cfg.model.qffn, n_qubits=args.n_qubits))
    )
    blocks = model.quantum_blocks if args.blocks == "preset" else args.blocks
    result = plan(
        model,
        args.backend,
        blocks=blocks,
        steps=args.steps,
        total_steps=args.total_steps or cfg.sample.steps,
        guidance=not args.no_guidance,
        shots=args.shots,
        ancilla_elimination=args.ancilla_elimination,
    )
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def _transpile(args: argparse.Namespace) -> int:
    from circuits import qffn_circuit
    from hardware.backends import resolve_backend
    from hardware.transpile import Transpiler

    spec = qffn_circuit(args.n_qubits, args.layers)
    tr = Transpiler(resolve_backend(args.backend), optimization_level=args.optimization_level, cache_dir=args.cache_dir)
    rows = [("faithful", tr.transpile(spec).report)]
    if args.ancilla_elimination:
        k = len(spec.ancilla_qubits)
        rows.append(("branch all-on", tr.transpile_branch(spec, (1,) * k)[1].report))
        rows.append(("branch all-off", tr.transpile_branch(spec, (0,) * k)[1].report))
    print(f"{spec.name} on {args.backend}")
    print(f"{'form':<16}{'qubits':>7}{'depth':>7}{'2q gates':>10}{'2q depth':>10}{'est. fidelity':>15}  layout")
    for form, r in rows:
        print(
            f"{form:<16}{r.logical_qubits:>7}{r.depth:>7}{r.two_qubit_gates:>10}{r.two_qubit_depth:>10}"
            f"{r.estimated_fidelity:>15.4f}  {list(r.layout)}"
        )
    return 0


def _emulate_check(args: argparse.Namespace) -> int:
    import time

    import torch

    from circuits import qffn_circuit
    from hardware.emulator import EmulatorExecutor
    from hardware.executor import RuntimeExecutor
    from qldm.quantum.statevector import StatevectorExecutor

    spec = qffn_circuit(args.n_qubits, 2)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.tokens, spec.num_inputs, generator=g, dtype=torch.float64)
    w = torch.rand(spec.num_weights, generator=g, dtype=torch.float64) * 2 * torch.pi
    exact = StatevectorExecutor(dtype=torch.float64).compile(spec)(x, w)
    name = f"aer-noise:{args.backend}"
    emu = EmulatorExecutor(name, shots=None, ancilla_elimination=args.ancilla_elimination).compile(spec)
    aer = RuntimeExecutor(name, shots=args.shots, ancilla_elimination=args.ancilla_elimination).compile(spec)
    t0 = time.perf_counter()
    e = emu(x, w)
    t1 = time.perf_counter()
    a = aer(x, w)
    t2 = time.perf_counter()
    print(f"{spec.name} on {name}, {args.tokens} tokens, Aer {args.shots} shots")
    print(f"mean |exact - aer|    {float((exact - a).abs().mean()):.4f}")
    print(f"mean |emulator - aer| {float((e - a).abs().mean()):.4f} (shot noise ~ {args.shots**-0.5:.4f})")
    print(f"time emulator {t1 - t0:.4f} s, Aer {t2 - t1:.3f} s, ratio {(t2 - t1) / max(t1 - t0, 1e-9):.0f}x")
    return 0


def run(args: argparse.Namespace) -> int:
    _check_real(getattr(args, "backend", ""), args.yes)
    return {"plan": _plan, "transpile": _transpile, "emulate-check": _emulate_check}[args.hw_command](args)
