"""The GPU check: one prepared run on a lent GPU machine that writes one JSON (``benchmarks/gpu_check.sh`` calls it).

It measures, on CUDA:

- the ``gpu``-marked tests (pass/fail counts from pytest);
- Q-FFN layer forward+backward tokens/s at n = 4, 8, 16 on the statevector executor (where it fits) and on the
  tensor-network ring sweep;
- one ``paper`` training step in fp16 with a GradScaler: seconds per step, peak memory, and the ratio to the same
  step with the quantum branch switched off (``quantum_blocks=none``);
- ``anime64`` denoiser forward steps per second at the sampler's batch;
- Aer on the GPU, if ``qiskit-aer-gpu`` is importable (else the JSON says why not).

``--dry-run`` runs every part on the CPU at toy sizes, so the JSON's fields are tested without a GPU; its numbers
mean nothing. Without CUDA and without ``--dry-run`` it says so in one line and exits 2: no figure is invented.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, *, repeats: int, sync) -> float:
    fn()  # warm-up: compile caches, cuBLAS handles
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def layer_throughput(device: str, *, tokens: int, repeats: int, sync) -> list[dict]:
    """Forward+backward tokens/s of the Q-FFN circuit layer at n = 4, 8, 16 per exact executor."""
    import torch

    from qldm.qffn import QFFNConfig, make_core

    rows = []
    for n in (4, 8, 16):
        for executor in ("statevector", "tensornet"):
            cfg = QFFNConfig(n_qubits=n, executor=executor, executor_dtype="float32")
            if executor == "statevector" and cfg.spec().num_qubits > 24:
                rows.append({"n": n, "executor": executor, "tokens_per_s": None, "note": "wider than the statevector"})
                continue
            layer = make_core(cfg).to(device)
            x = torch.randn(tokens, n, device=device, requires_grad=True)

            def step(layer=layer, x=x):
                layer(x).sum().backward()

            seconds = _timed(step, repeats=repeats, sync=sync)
            rows.append({"n": n, "executor": executor, "tokens_per_s": tokens / seconds, "tokens": tokens})
    return rows


def paper_step(device: str, *, batch: int, repeats: int, sync, dry: bool) -> dict:
    """One ``paper`` training step (fp16 autocast + GradScaler on CUDA) with and without the quantum branch."""
    import torch

    from qldm.config import apply_overrides, make_preset
    from qldm.models import diffusion_loss, make_train_scheduler
    from qldm.models.unet import build_unet

    out = {}
    for label, sets in (("quantum", []), ("classical", ["model.quantum_blocks=none"])):
        base = [
            "model.image_size=64",
            "data.image_size=64",
            "model.unet_block_channels=16,32,32,32",
            "model.attention_head_dim=8",
        ]
        cfg = apply_overrides(make_preset("paper"), sets + (base if dry else [])).model
        unet = build_unet(cfg).to(device)
        opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler(device, enabled=device == "cuda")
        sched = make_train_scheduler(cfg)
        latents = torch.randn(batch, cfg.latent_channels, cfg.latent_size, cfg.latent_size, device=device)
        hidden = torch.randn(batch, cfg.max_text_length, cfg.text_dim, device=device)
        gen = torch.Generator().manual_seed(0)

        def step(unet=unet, opt=opt, scaler=scaler, sched=sched, latents=latents, hidden=hidden, cfg=cfg, gen=gen):
            with torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
                loss = diffusion_loss(unet, latents, hidden, None, sched, cfg, generator=gen)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = _timed(step, repeats=repeats, sync=sync)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        out[label] = {"seconds_per_step": seconds, "peak_gib": peak, "batch": batch}
        del unet, opt
    out["quantum_over_classical"] = out["quantum"]["seconds_per_step"] / out["classical"]["seconds_per_step"]
    return out


def anime64_denoiser(device: str, *, batch: int, repeats: int, sync) -> dict:
    """Denoiser forward calls per second of ``anime64`` at a sampling batch (guidance doubles it)."""
    import torch

    from qldm.config import make_preset
    from qldm.models.unet import build_unet

    cfg = make_preset("anime64").model
    unet = build_unet(cfg).to(device).eval()
    x = torch.randn(2 * batch, cfg.latent_channels, cfg.latent_size, cfg.latent_size, device=device)
    hidden = torch.randn(2 * batch, cfg.max_text_length, cfg.text_dim, device=device)

    def step():
        with torch.no_grad():
            unet(x, torch.full((2 * batch,), 500, device=device), hidden)

    return {"steps_per_s": 1.0 / _timed(step, repeats=repeats, sync=sync), "batch": batch, "guidance_x2": True}


def aer_gpu() -> dict:
    """Aer's statevector on the GPU, if the installed Aer has one."""
    try:
        from qiskit_aer import AerSimulator

        devices = AerSimulator().available_devices()
    except Exception as err:  # noqa: BLE001 - any import or runtime failure is the answer
        return {"available": False, "reason": f"{type(err).__name__}: {err}"}
    if "GPU" not in devices:
        return {"available": False, "reason": f"AerSimulator devices {devices} (qiskit-aer-gpu not installed)"}
    from qiskit import QuantumCircuit, transpile

    qc = QuantumCircuit(24)
    qc.h(range(24))
    for i in range(23):
        qc.cx(i, i + 1)
    qc.save_statevector()
    sim = AerSimulator(method="statevector", device="GPU")
    start = time.perf_counter()
    sim.run(transpile(qc, sim)).result()
    return {"available": True, "seconds_24q_ghz": time.perf_counter() - start}


def gpu_tests(dry: bool) -> dict:
    """Counts of the ``gpu``-marked tests (collected only, in a dry run)."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests"]
    if dry:
        args.append("--collect-only")
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    tail = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    return {"returncode": run.returncode, "summary": tail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU at toy sizes (tests the JSON)")
    args = parser.parse_args(argv)
    import torch

    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device here; run it on a GPU machine (or --dry-run to test the script)",
              file=sys.stderr)  # fmt: skip
        return 2
    device = "cpu" if dry else "cuda"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _machine import machine_info

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    result = {
        "machine": machine_info(extra={"gpu": gpu, "torch_cuda": torch.version.cuda}),
        "dry_run": dry,
        "gpu_tests": gpu_tests(dry),
        "layer": layer_throughput(device, tokens=64 if dry else 16384, repeats=1 if dry else 5, sync=sync),
        "paper_step": paper_step(device, batch=2 if dry else 64, repeats=1 if dry else 3, sync=sync, dry=dry),
        "anime64_denoiser": anime64_denoiser(device, batch=2 if dry else 50, repeats=1 if dry else 5, sync=sync),
        "aer_gpu": aer_gpu(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
