"""Hardware path benchmark: calibrated emulator vs Aer noisy simulation and runtime local mode; image plans.

Part 1 (accuracy and speed, n = 2, 4, 6 data qubits, Q-FFN with per-qubit ancillas, 2 layers): for each form
(faithful 2n wires; ancilla-eliminated n wires, branches sampled with one shared seed so every path runs the
same branches) compare on the same tokens and weights

- exact (torch statevector, no noise),
- the calibrated emulator (``hardware.emulator``, damped means, no shot noise),
- Aer with ``NoiseModel.from_backend`` (``aer-noise:<Fake>``), shot-sampled,
- runtime local testing mode (``fake:<Fake>``), shot-sampled (only where it finishes in reasonable time),

reporting mean |emulator - noisy| and mean |exact - noisy| (the noise the emulator must explain), the shot-noise floor
1/sqrt(shots), and wall times. Weights are small (U[0, 0.6)) so outputs are large enough for noise to show.

Part 2: ``hardware.sampling.plan`` for one image at the ``tiny`` and ``paper`` presets, at each preset's own resolution,
all steps and last 5 steps: PUBs, jobs, shots, 2q depth and a modelled QPU time (a model, not a measurement).

Part 3 (optional, ``--pipeline DIR``): sample images from a trained pipeline with exact vs emulated-hardware Q-FFNs
and report the mean absolute pixel difference (FID and attribute accuracy need ``qldm evaluate`` on the outputs).

``--parts`` chooses which parts run (default ``accuracy,plans``); the others keep what ``--out`` already holds, and
``provenance`` records, per part, the settings, machine and date of the run that produced it.

Usage: ``python benchmarks/bench_hardware.py [--backend fake:FakeTorino] [--parts plans] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "hardware.json"


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def accuracy_rows(
    backend: str,
    sizes: list[int],
    tokens: int,
    shots: int,
    local_shots: int,
    local_max_n: int,
    max_branches: int,
) -> list[dict]:
    import circuits
    from hardware.emulator import EmulatorExecutor
    from hardware.executor import RuntimeExecutor
    from qldm.quantum.statevector import StatevectorExecutor

    rows = []
    for n in sizes:
        spec = circuits.qffn_circuit(n, 2)
        g = torch.Generator().manual_seed(n)
        x = torch.randn(tokens, n, generator=g, dtype=torch.float64)
        w = torch.rand(spec.num_weights, generator=g, dtype=torch.float64) * 0.6
        exact = StatevectorExecutor(dtype=torch.float64).compile(spec)(x, w)
        forms = [("faithful", False), ("ancilla-eliminated", True)]
        for form, ae in forms:
            kw = {"ancilla_elimination": ae, "max_branches": max_branches} if ae else {}
            emu = EmulatorExecutor(f"aer-noise:{backend}", shots=None, **kw).compile(spec)
            emu(x, w)  # warm: transpile every branch once
            torch.manual_seed(0)
            e, t_emu = _timed(emu, x, w)
            row = {
                "n": n,
                "form": form,
                "wires": spec.num_qubits if not ae else n,
                "tokens": tokens,
                "emulator_s": t_emu,
                "exact_mean_abs": float(exact.abs().mean()),
            }
            paths = [("aer_noise", f"aer-noise:{backend}", shots)]
            if n <= local_max_n:
                paths.append(("local_mode", f"fake:{backend}", local_shots))
            for key, name, s in paths:
                prog = RuntimeExecutor(name, shots=s, **kw).compile(spec)
                torch.manual_seed(0)  # same sampled branches as the emulator
                noisy, t = _timed(prog, x, w)
                row.update(
                    {
                        f"{key}_shots": s,
                        f"{key}_s": t,
                        f"{key}_shot_floor": 1 / math.sqrt(s),
                        f"{key}_emulator_err": float((e - noisy).abs().mean()),
                        f"{key}_exact_err": float((exact - noisy).abs().mean()),
                        f"{key}_speed_ratio": t / max(t_emu, 1e-9),
                    }
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def plan_rows(backend: str) -> list[dict]:
    from hardware.sampling import plan
    from qldm.config import make_preset

    rows = []
    for preset in ("tiny", "paper"):
        cfg = make_preset(preset)
        for steps in ("all", "last:5"):
            for ae in (False, True):
                p = plan(
                    cfg.model,
                    f"fake:{backend}",
                    blocks=cfg.model.quantum_blocks,
                    steps=steps,
                    total_steps=cfg.sample.steps,
                    guidance=cfg.sample.guidance != 1.0,
                    shots=1024,
                    ancilla_elimination=ae,
                )
                rows.append({"preset": preset, "image_size": cfg.model.image_size, "steps": steps, **p})
    return rows


def pipeline_effect(pipeline_dir: str, backend: str, shots: int) -> dict:
    """Exact vs emulated-hardware Q-FFNs on the last 5 steps of a trained pipeline (same seed)."""
    import numpy as np

    from hardware.sampling import attach_hardware
    from qldm.config import load_config
    from qldm.models import QLDMPipeline

    pipe = QLDMPipeline.from_pretrained(pipeline_dir)
    cfg = load_config(Path(pipeline_dir))
    steps = cfg.sample.steps
    prompts = list(cfg.sample.prompts)
    with torch.no_grad():
        ref = pipe(
            prompts, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), output_type="np"
        ).images
        cb = attach_hardware(pipe, f"aer-noise:{backend}", steps="last:5", total_steps=steps, emulate=True, shots=shots)
        hw = pipe(
            prompts,
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
            on_step_begin=cb,
        ).images
    return {"pipeline": pipeline_dir, "shots": shots, "mean_abs_pixel_diff": float(np.abs(ref - hw).mean())}


def _load_previous(path: Path) -> dict:
    """The existing result file, with the top-level ``machine``/``settings`` of older files moved into
    ``provenance["accuracy"]`` (they described the accuracy run)."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if "provenance" not in data and "settings" in data:
        data["provenance"] = {"accuracy": {"settings": data.pop("settings"), "machine": data.pop("machine")}}
    if data.get("image_effect", 0) is None:  # older files wrote null when the part did not run
        del data["image_effect"]
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="fake:FakeTorino", help="fake:<FakeName> or aer-noise:<FakeName>")
    ap.add_argument("--parts", default="accuracy,plans", help="comma list of accuracy, plans (effect: --pipeline)")
    ap.add_argument("--sizes", default="2,4,6")
    ap.add_argument("--tokens", type=int, default=4)
    ap.add_argument("--shots", type=int, default=1000, help="Aer noisy shots per parameter set")
    ap.add_argument("--local-shots", type=int, default=200, help="local-mode shots per parameter set")
    ap.add_argument("--local-max-n", type=int, default=2, help="largest n run in local mode (slow)")
    ap.add_argument("--max-branches", type=int, default=16)
    ap.add_argument("--pipeline", help="a trained pipeline folder for the image-effect part")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    from hardware.backends import parse_backend_name

    _, device = parse_backend_name(args.backend, kinds=("aer-noise", "fake"))
    parts = {p.strip() for p in args.parts.split(",") if p.strip()} | ({"effect"} if args.pipeline else set())
    if parts - {"accuracy", "plans", "effect"}:
        raise SystemExit(f"unknown --parts {sorted(parts - {'accuracy', 'plans', 'effect'})}")
    warnings.filterwarnings("ignore")
    sizes = [int(s) for s in args.sizes.split(",")]
    data = _load_previous(args.out)
    acc, plans, effect = data.get("accuracy", []), data.get("plans", []), data.get("image_effect")
    if "accuracy" in parts:
        acc = accuracy_rows(
            device, sizes, args.tokens, args.shots, args.local_shots, args.local_max_n, args.max_branches
        )
    if "plans" in parts:
        plans = plan_rows(device)
    if "effect" in parts:
        effect = pipeline_effect(args.pipeline, device, args.shots)

    print(f"\nEmulator vs noisy simulation on {device} ({args.tokens} tokens; errors = mean |diff|)")
    print(
        f"{'n':>2} {'form':<19}{'wires':>6}{'emu s':>8}{'aer s':>8}{'ratio':>8}"
        f"{'emu-aer':>9}{'exact-aer':>10}"
        f"{'floor':>7}{'local s':>9}{'emu-loc':>9}{'exact-loc':>10}"
    )
    for r in acc:
        loc = (
            f"{r['local_mode_s']:>9.1f}{r['local_mode_emulator_err']:>9.3f}{r['local_mode_exact_err']:>10.3f}"
            if "local_mode_s" in r
            else f"{'-':>9}{'-':>9}{'-':>10}"
        )
        print(
            f"{r['n']:>2} {r['form']:<19}{r['wires']:>6}{r['emulator_s']:>8.3f}{r['aer_noise_s']:>8.1f}"
            f"{r['aer_noise_speed_ratio']:>8.0f}{r['aer_noise_emulator_err']:>9.3f}{r['aer_noise_exact_err']:>10.3f}"
            f"{r['aer_noise_shot_floor']:>7.3f}{loc}"
        )
    print("\nPlan for one image (1024 shots per parameter set; QPU time is a MODEL, not a measurement)")
    print(
        f"{'preset':<7}{'px':>5}{'steps':>8}{'elim':>6}{'PUBs':>7}{'jobs':>6}{'shots':>12}{'2q depth':>9}"
        f"{'est. F':>8}{'QPU s (model)':>15}"
    )
    for p in plans:
        print(
            f"{p['preset']:<7}{p['image_size']:>5}{p['steps']:>8}{str(p['ancilla_elimination'])[0]:>6}"
            f"{p['pubs']:>7}{p['jobs']:>6}{p['shots']:>12}{p['two_qubit_depth']:>9}"
            f"{p['estimated_fidelity']:>8.3f}{p['qpu_time_model_s']:>15.0f}"
        )
    if effect:
        print("\nImage effect:", effect)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor()}
    run = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": vars(args)
        | {"out": str(args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out)},
        "machine": machine,
    }
    provenance = data.get("provenance", {}) | {part: run for part in sorted(parts)}
    result = {"provenance": provenance, "accuracy": acc, "plans": plans}
    if effect is not None:
        result["image_effect"] = effect
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
