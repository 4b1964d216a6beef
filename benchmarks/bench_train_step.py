"""Training-step time and peak memory of the quantum and the classical model at given presets, on CPU or CUDA.

One step = caption dropout + ``diffusion_loss`` + backward + AdamW step (the trainer's optimizer), on random latents
and text states of the preset's shapes (the frozen VAE and text encoder run once per run, so they are not part of a
step). "classical" is the same preset with ``model.quantum_blocks=none``. On CUDA the preset's mixed precision
(``paper``: fp16 autocast with a GradScaler, as the trainer) and gradient checkpointing apply; on CPU the trainer
falls back to fp32, and so does this script. Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the process's
peak RSS on CPU. Prints a table and writes JSON.

    python benchmarks/bench_train_step.py [--presets tiny anime64] [--steps 10] [--threads 2] [--out PATH]
    python benchmarks/bench_train_step.py --presets paper --device cuda \
        --out benchmarks/results/train_step_paper_cuda.json
    python benchmarks/bench_train_step.py --presets paper --set train.batch_size=4 --steps 3 \
        --out benchmarks/results/train_step_paper_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _machine import machine_info  # benchmarks/ is sys.path[0] when this file runs as a script


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def step_time(preset: str, overrides: list[str], *, steps: int, warmup: int, seed: int, device: str) -> dict:
    from qldm.config import apply_overrides, make_preset
    from qldm.models import diffusion_loss, make_train_scheduler
    from qldm.train.components import build_unet
    from qldm.train.loop import build_optimizer, resolve_precision

    cfg = resolve_precision(apply_overrides(make_preset(preset), overrides), cuda=device == "cuda")
    torch.manual_seed(seed)
    unet = build_unet(cfg).to(device).train()  # with gradient checkpointing if the preset asks for it
    opt = build_optimizer(unet, cfg)
    sched = make_train_scheduler(cfg.model)
    m, b = cfg.model, cfg.train.batch_size
    latents = torch.randn(b, m.latent_channels, m.latent_size, m.latent_size, device=device)
    hidden = torch.randn(b, m.max_text_length, m.cross_attention_dim, device=device)
    mask = torch.ones(b, m.max_text_length, dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    amp = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.train.mixed_precision)
    scaler = torch.amp.GradScaler(device, enabled=amp is torch.float16)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device_type=device, dtype=amp or torch.float32, enabled=amp is not None):
            loss = diffusion_loss(unet, latents, hidden, mask, sched, m, generator=gen)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.train.grad_clip)
        scaler.step(opt)
        scaler.update()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in unet.parameters())
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _peak_rss_mib()
    return {
        "device": device,
        "mixed_precision": cfg.train.mixed_precision,
        "peak_memory_mib": peak,
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
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="benchmarks/results/train_step.json")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_train_step: --device cuda but torch sees no GPU")
    torch.set_num_threads(args.threads)
    rows = []
    for preset in args.presets:
        for label, extra in (("quantum", []), ("classical", ["model.quantum_blocks=none"])):
            r = step_time(
                preset, [*args.overrides, *extra], steps=args.steps, warmup=args.warmup, seed=args.seed,
                device=args.device,
            )  # fmt: skip
            rows.append({"preset": preset, "model": label, **r})
            print(
                f"{preset:>8} {label:>9}: {r['step_s_median'] * 1e3:8.1f} ms/step (batch {r['batch']}, "
                f"{r['params'] / 1e6:.2f} M params, Q-FFN {r['quantum_blocks']}, n={r['n_qubits']}, "
                f"peak {r['peak_memory_mib']:.0f} MiB, {r['device']})",
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
    info = machine_info(args.threads)
    out = {
        "machine": {
            **{k: info[k] for k in ("cpu", "cores", "threads", "torch", "load_avg")},
            "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        },
        "overrides": args.overrides,
        "commit": info["commit"],
        "rows": rows,
        "ratio_quantum_over_classical": ratios,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
