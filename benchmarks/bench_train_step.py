"""Training-step time of the quantum and the classical model at the ``tiny`` and ``anime64`` presets.

One step = caption dropout + ``diffusion_loss`` + backward + AdamW step (the trainer's optimizer), on random latents
and text states of the preset's shapes (the frozen VAE and text encoder run once per run, so they are not part of a
step). "classical" is the same preset with ``model.quantum_blocks=none``. Prints a table and writes JSON.

    python benchmarks/bench_train_step.py [--presets tiny anime64] [--steps 10] [--threads 2] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch


def step_time(preset: str, overrides: list[str], *, steps: int, warmup: int, seed: int) -> dict:
    from qldm.config import apply_overrides, make_preset
    from qldm.models import diffusion_loss, make_train_scheduler
    from qldm.train.components import build_unet
    from qldm.train.loop import build_optimizer

    cfg = apply_overrides(make_preset(preset), overrides)
    torch.manual_seed(seed)
    unet = build_unet(cfg).train()
    opt = build_optimizer(unet, cfg)
    sched = make_train_scheduler(cfg.model)
    m, b = cfg.model, cfg.train.batch_size
    latents = torch.randn(b, m.latent_channels, m.latent_size, m.latent_size)
    hidden = torch.randn(b, m.max_text_length, m.cross_attention_dim)
    mask = torch.ones(b, m.max_text_length, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = diffusion_loss(unet, latents, hidden, mask, sched, m, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.train.grad_clip)
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in unet.parameters())
    return {
        "batch": b,
        "latent": [m.latent_channels, m.latent_size, m.latent_size],
        "quantum_blocks": m.quantum_blocks,
        "n_qubits": m.qffn.n_qubits,
        "executor": m.qffn.executor,
        "params": n_params,
        "step_s_median": statistics.median(times),
        "step_s_min": min(times),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "anime64"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/train_step.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for preset in args.presets:
        for label, overrides in (("quantum", []), ("classical", ["model.quantum_blocks=none"])):
            r = step_time(preset, overrides, steps=args.steps, warmup=args.warmup, seed=args.seed)
            rows.append({"preset": preset, "model": label, **r})
            print(
                f"{preset:>8} {label:>9}: {r['step_s_median'] * 1e3:8.1f} ms/step (batch {r['batch']}, "
                f"{r['params'] / 1e6:.2f} M params, Q-FFN {r['quantum_blocks']}, n={r['n_qubits']})",
                flush=True,
            )
    ratios = {}
    for preset in args.presets:
        q = next(r for r in rows if r["preset"] == preset and r["model"] == "quantum")
        c = next(r for r in rows if r["preset"] == preset and r["model"] == "classical")
        ratios[preset] = q["step_s_median"] / c["step_s_median"]
    print("\n| preset | quantum ms/step | classical ms/step | ratio |\n|---|---|---|---|")
    for preset in args.presets:
        q = next(r for r in rows if r["preset"] == preset and r["model"] == "quantum")
        c = next(r for r in rows if r["preset"] == preset and r["model"] == "classical")
        print(f"| {preset} | {q['step_s_median'] * 1e3:.1f} | {c['step_s_median'] * 1e3:.1f} | {ratios[preset]:.2f} |")
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = {
        "machine": {
            "cpu": cpu,
            "cores": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "load_avg": os.getloadavg(),
        },
        "commit": commit,
        "rows": rows,
        "ratio_quantum_over_classical": ratios,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
