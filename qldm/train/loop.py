"""Stage 2: the latent-diffusion training loop.

HF Accelerate, three AdamW groups, cosine warm-up, EMA, atomic checkpoints and exact resume.

Run directory layout (``run_dir``)::

    run_config.json          the config, updated with the measured latent scale
    vae/                     stage-1 VAE (save_pretrained) + latent_scale.txt
    cache/                   latents of the data set (LatentCache); a run whose ``train.vae_pretrained`` is another
                             run's ``vae/`` folder reads and writes that run's ``cache/`` instead
    checkpoints/step-XXXXXXXX/   unet.safetensors, ema.safetensors, run_config.json, state.pt (atomic)
    metrics.jsonl, tb/       per-step loss/lr/grad-norm/gates, skipped steps; TensorBoard events
    samples/epoch-XXX.png    EMA sample grid per epoch (fixed prompts and seeds)
    evolution.png, loss.png, gates.png
    timings.json             wall and CPU seconds of each stage (data, vae, latents, ...), one entry per call
    pipeline/                final QLDMPipeline with EMA weights (save_pretrained) + run_config.json

Determinism: the batch order of epoch e is a permutation drawn from ``seed`` and ``e`` alone, the diffusion
noise comes from one saved generator, and stochastic executors draw from torch's global RNG, which is saved
too. A run resumed from any checkpoint therefore replays exactly the steps an uninterrupted run would take.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from qldm.config import RunConfig, save_config
from qldm.train.checkpoint import (
    Position,
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from qldm.train.components import (
    build_unet,
    cache_latents,
    encode_texts,
    gate_values,
    load_dataset,
    make_pipeline,
)
from qldm.train.progress import (
    MetricsLogger,
    evolution_figure,
    plot_gates,
    plot_loss,
    read_metrics,
    save_grid,
)
from qldm.train.vae import load_or_train_vae

__all__ = ["TrainResult", "train", "build_optimizer", "epoch_order", "resolve_precision", "latent_cache_dir"]

STAGES: tuple[str, ...] = ("data", "vae", "latents", "text", "denoiser", "sampling", "checkpoints", "export")


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run produced.

    Attributes:
        timings: Wall seconds per stage of this call (keys :data:`STAGES`; ``denoiser`` is the optimisation steps
            alone), plus ``total`` and ``denoiser_steps`` (steps taken in this call). Also in ``timings.json``.
        cpu_timings: The same stages in CPU seconds of this process (all threads), which a busy machine inflates far
            less than wall time.
    """

    run_dir: Path
    cfg: RunConfig
    steps: int
    last_loss: float
    skipped_steps: int
    pipeline_dir: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)


def resolve_precision(cfg: RunConfig, *, cuda: bool) -> RunConfig:
    """The config a run actually trains with: fp16 needs CUDA, so without it training falls back to fp32.

    The fallback is explicit: a warning says so, and the returned config (saved with the run) records
    ``mixed_precision="no"``, so a CPU result is never mistaken for an fp16 one. bf16 is kept: it runs on CPU.
    """
    if cfg.train.mixed_precision != "fp16" or cuda:
        return cfg
    warnings.warn(
        "train.mixed_precision='fp16' needs CUDA; no GPU found, so this run trains in fp32 (mixed_precision='no')",
        UserWarning,
        stacklevel=2,
    )
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, mixed_precision="no"))


def latent_cache_dir(cfg: RunConfig, run_dir: Path) -> Path:
    """Where a run's latent cache lives: its own ``cache/``, or that of the run whose stage-1 VAE it reuses.

    Entries are keyed by the VAE's weights and the data set, so sharing the folder never returns stale latents;
    a control or ablation trained on ``train.vae_pretrained=RUN/vae`` then skips encoding the data set again.
    """
    pre = Path(cfg.train.vae_pretrained) if cfg.train.vae_pretrained else None
    if pre is not None and pre.name == "vae" and (pre.parent / "run_config.json").is_file():
        return pre.parent / "cache"
    return run_dir / "cache"


def build_optimizer(unet, cfg: RunConfig) -> torch.optim.AdamW:
    """AdamW over the model's three parameter groups, each with its own lr; no weight decay on the gates."""
    t = cfg.train
    groups = unet.parameter_groups()
    spec = [
        ("classical", t.lr_classical, t.weight_decay),
        ("quantum", t.lr_quantum, t.weight_decay),
        ("gate", t.lr_gate, 0.0),  # decay would pull lambda to 0, i.e. switch the quantum branch off
    ]
    params = [
        {"params": [p for p in groups[name] if p.requires_grad], "lr": lr, "weight_decay": wd, "name": name}
        for name, lr, wd in spec
    ]
    return torch.optim.AdamW([g for g in params if g["params"]])


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch, a function of (seed, epoch) only, so a resumed run replays it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def _sample_grid(cfg, pipe_parts, unet, ema, path: Path) -> Path:
    """Sample the config's fixed prompts x seeds with EMA weights, without disturbing any training RNG."""
    rng = capture_rng()
    params = list(unet.parameters())
    ema.store(params)
    ema.copy_to(params)
    unet.eval()
    try:
        pipe = make_pipeline(cfg, unet=unet, **pipe_parts)
        # one call per seed: row r of the grid is seed r for every prompt, the same noise each epoch
        rows = []
        with torch.no_grad():
            for seed in cfg.sample.seeds:
                rows.append(
                    pipe(
                        list(cfg.sample.prompts),
                        num_inference_steps=cfg.sample.steps,
                        guidance_scale=cfg.sample.guidance,
                        generator=torch.Generator().manual_seed(seed),
                        output_type="np",
                    ).images
                )  # (P, H, W, 3)
        images = np.concatenate(rows)  # (S * P, H, W, 3)
        return save_grid(images, path, nrow=len(cfg.sample.prompts))
    finally:
        ema.restore(params)
        unet.train()
        restore_rng(rng)


def _export(cfg, pipe_parts, unet, ema, run_dir: Path) -> Path:
    """Save the final pipeline with EMA weights into ``run_dir/pipeline`` (temp folder, then rename)."""
    params = list(unet.parameters())
    ema.store(params)
    ema.copy_to(params)
    final, tmp = run_dir / "pipeline", run_dir / ".tmp-pipeline"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        make_pipeline(cfg, unet=unet, **pipe_parts).save_pretrained(tmp)
        save_config(cfg, tmp / "run_config.json")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        ema.restore(params)
    return final


def train(
    cfg: RunConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    show_progress: bool = True,
    export: bool = True,
    samples: bool = True,
    on_step: Callable[[Position, float], None] | None = None,
) -> TrainResult:
    """Train (stage 1 VAE if needed, then the diffusion model) into ``run_dir``.

    Args:
        cfg: Validated run config.
        run_dir: Output folder (layout in the module docstring).
        resume: Continue from the newest checkpoint in ``run_dir/checkpoints`` (mid-epoch if it was saved
            there). Without it, an existing checkpoint folder is an error, so a run is never overwritten.
        show_progress: tqdm bars.
        export: Write ``run_dir/pipeline`` at the end.
        samples: Write the per-epoch sample grids and the evolution figure.
        on_step: Called after every optimizer step with the new position and the loss (tests use it to
            kill a run).

    Raises:
        ValueError: On ``resume`` without a checkpoint, or an existing run without ``resume``.
    """
    from accelerate import Accelerator
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from qldm.models import build_text_encoder, diffusion_loss, drop_captions, make_train_scheduler

    run_dir = Path(run_dir)
    ckpt_root = run_dir / "checkpoints"
    latest = latest_checkpoint(ckpt_root)
    if resume and latest is None:
        raise ValueError(f"--resume: no checkpoint under {ckpt_root}")
    if not resume and latest is not None:
        raise ValueError(f"{run_dir} already holds checkpoints; pass --resume to continue it or choose a new --out")
    if cfg.model.train_text_encoder:
        raise ValueError("model.train_text_encoder=True is not supported by this trainer (caption states are cached)")
    cfg = resolve_precision(cfg, cuda=torch.cuda.is_available())
    t = cfg.train
    accelerator = Accelerator(mixed_precision=t.mixed_precision)
    main = accelerator.is_main_process
    run_dir.mkdir(parents=True, exist_ok=True)
    timings, cpu = dict.fromkeys(STAGES, 0.0), dict.fromkeys(STAGES, 0.0)
    clock = (time.perf_counter(), time.process_time())

    def lap(stage: str) -> None:
        nonlocal clock
        now = (time.perf_counter(), time.process_time())
        timings[stage] += now[0] - clock[0]
        cpu[stage] += now[1] - clock[1]
        clock = now

    # ---- data and frozen encoders (stage 1 when needed)
    dataset = load_dataset(cfg.data)
    lap("data")
    # on resume keep every record for now; truncated to the checkpoint's step once that is known
    logger = MetricsLogger(run_dir, tensorboard=main, resume_step=2**62 if resume else None) if main else None
    log = logger.log if logger else None
    vae, cfg = load_or_train_vae(cfg, dataset, run_dir, show_progress=show_progress and main, log=log)
    save_config(cfg, run_dir / "run_config.json")
    lap("vae")
    cache_dir = latent_cache_dir(cfg, run_dir)
    cached_before = set(cache_dir.glob("latents-*.safetensors"))
    latents, texts = cache_latents(vae, dataset, cfg, cache_dir)  # (N, C, h, w), N captions
    cache_reused = not (set(cache_dir.glob("latents-*.safetensors")) - cached_before)
    lap("latents")
    torch.manual_seed(t.seed)  # model init depends only on the seed
    text_encoder = build_text_encoder(cfg.model)
    hidden, mask = encode_texts(text_encoder, texts)  # (N, L, D), (N, L)
    empty_hidden, empty_mask = text_encoder.empty(1)  # (1, L0, D): the same embedding sampling uses for CFG
    lap("text")

    unet = build_unet(cfg)
    optimizer = build_optimizer(unet, cfg)
    n, world = latents.shape[0], accelerator.num_processes
    per_epoch = n // (t.batch_size * world)
    if per_epoch < 1:
        raise ValueError(f"data set of {n} images is smaller than one batch of {t.batch_size} x {world} processes")
    total = min(t.max_steps or per_epoch * t.epochs, per_epoch * t.epochs)
    lr_scheduler = get_cosine_schedule_with_warmup(optimizer, min(t.warmup_steps, total // 2), total)
    ema = EMAModel(unet.parameters(), decay=t.ema_decay)
    noise_sched = make_train_scheduler(cfg.model)
    noise_gen = torch.Generator().manual_seed(t.seed + 1)
    pos, extra = Position(), {"grids": {}}
    if resume:
        pos, extra = load_checkpoint(
            latest, unet=unet, ema=ema, optimizer=optimizer, lr_scheduler=lr_scheduler, generator=noise_gen
        )
        if logger:
            logger.close()
            logger = MetricsLogger(run_dir, tensorboard=True, resume_step=pos.step)
            log = logger.log
    unet, optimizer = accelerator.prepare(unet, optimizer)
    raw = accelerator.unwrap_model(unet)
    ema.to(accelerator.device)
    pipe_parts = {"vae": vae, "text_encoder": text_encoder}
    grids = {int(k): Path(v) for k, v in extra.get("grids", {}).items()}

    def checkpoint(p: Position) -> None:
        if main:
            save_checkpoint(
                ckpt_root,
                position=p,
                cfg=cfg,
                unet=raw,
                ema=ema,
                optimizer=optimizer,
                lr_scheduler=lr_scheduler,
                generator=noise_gen,
                extra={"grids": {k: str(v) for k, v in grids.items()}},
                keep=t.keep_checkpoints,
            )

    bar = tqdm(total=total, initial=pos.step, desc=f"train {cfg.name}", disable=not (show_progress and main))
    last_loss, skipped, step = float("nan"), 0, pos.step
    first_step = step
    lap("denoiser")  # model build, optimizer and resume belong to the denoiser stage
    unet.train()
    for epoch in range(pos.epoch, t.epochs):
        order = epoch_order(n, t.seed, epoch)
        first = pos.batch if epoch == pos.epoch else 0
        complete = True
        for b in range(first, per_epoch):
            if step >= total:
                complete = False
                break
            rows = order[(b * world + accelerator.process_index) * t.batch_size :][: t.batch_size]
            lat = latents[rows].to(accelerator.device)  # (B, C, h, w)
            h, m = drop_captions(
                hidden[rows],
                mask[rows],
                empty_hidden,
                empty_mask,
                p=cfg.model.cfg_dropout,
                generator=noise_gen,
            )  # (B, L, D), (B, L)
            with accelerator.autocast():
                loss = diffusion_loss(
                    unet, lat, h.to(lat.device), m.to(lat.device), noise_sched, cfg.model, generator=noise_gen
                )  # scalar
            record = {"step": step + 1, "epoch": epoch + 1}
            finite_loss, gn = bool(torch.isfinite(loss)), None
            if finite_loss:
                accelerator.backward(loss)
                if t.grad_clip > 0:
                    gn = accelerator.clip_grad_norm_(unet.parameters(), t.grad_clip)  # unscales under fp16
            grad_ok = finite_loss and (gn is None or bool(torch.isfinite(torch.as_tensor(gn))))
            if finite_loss and (grad_ok or accelerator.scaler is not None):
                # under fp16 the GradScaler itself skips an inf step and lowers its scale; it must see it
                optimizer.step()
                grad_ok = grad_ok and not optimizer.step_was_skipped
            if grad_ok:
                ema.step(raw.parameters())
                last_loss = float(loss.detach())
                record.update(loss=last_loss, grad_norm=float(gn) if gn is not None else None)
            else:  # NaN/inf guard: no update of weights or EMA, the schedule moves on, and the log says so
                skipped += 1
                reason = "non-finite gradient" if finite_loss else "non-finite loss"
                record.update(skipped=True, loss=None, reason=reason)
                if main:
                    tqdm.write(f"step {step + 1}: {reason}, update skipped")
            optimizer.zero_grad(set_to_none=True)
            lr_scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}")
            if log and (step % t.log_every == 0 or not grad_ok):
                record.update({f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups}, **gate_values(raw))
                log(record)
            pos = Position(step=step, epoch=epoch, batch=b + 1)
            if t.checkpoint_every and step % t.checkpoint_every == 0:
                lap("denoiser")
                checkpoint(pos)
                lap("checkpoints")
            if on_step is not None:
                on_step(pos, last_loss)
        lap("denoiser")
        if not complete:  # max_steps reached mid-epoch
            break
        pos = Position(step=step, epoch=epoch + 1, batch=0)
        if main and samples and (epoch + 1) % t.sample_every == 0:
            grids[epoch + 1] = _sample_grid(
                cfg, pipe_parts, raw, ema, run_dir / "samples" / f"epoch-{epoch + 1:03d}.png"
            )
            evolution_figure(grids, run_dir / "evolution.png")
            lap("sampling")
        checkpoint(pos)
        lap("checkpoints")
        if step >= total:
            break
    bar.close()
    done = latest_checkpoint(ckpt_root)
    if done is None or done.name != f"step-{step:08d}":
        checkpoint(pos)
    accelerator.wait_for_everyone()
    lap("checkpoints")
    out = None
    if main:
        records = read_metrics(run_dir / "metrics.jsonl")
        plot_loss(records, run_dir / "loss.png")
        plot_gates(records, run_dir / "gates.png")
        if export:
            out = _export(cfg, pipe_parts, raw, ema, run_dir)
        logger.close()
    lap("export")
    timings, cpu = ({k: round(v, 3) for k, v in d.items()} for d in (timings, cpu))
    timings.update(total=round(sum(timings.values()), 3), denoiser_steps=step - first_step)
    cpu.update(total=round(sum(cpu.values()), 3), denoiser_steps=step - first_step)
    if main:
        info = {"timings_s": timings, "cpu_s": cpu, "latent_cache": "reused" if cache_reused else "computed"}
        info.update(resumed=resume, threads=torch.get_num_threads(), load_avg=os.getloadavg())
        path = run_dir / "timings.json"  # one entry per call: a resume appends, a fresh run starts the list
        calls = json.loads(path.read_text())["calls"] if resume and path.is_file() else []
        path.write_text(json.dumps({"calls": [*calls, info]}, indent=2) + "\n")
    return TrainResult(run_dir, cfg, step, last_loss, skipped, out, timings, cpu)
