"""Stage 2: the latent-diffusion training loop (HF Accelerate, AdamW groups, cosine warm-up, EMA, atomic
resume).

Run directory layout (``run_dir``)::

    run_config.json          the config, updated with the measured latent scale
    vae/                     stage-1 VAE (save_pretrained) + latent_scale.txt
    cache/                   latents of the data set (LatentCache)
    checkpoints/step-XXXXXXXX/   unet.safetensors, ema.safetensors, run_config.json, state.pt (atomic)
    metrics.jsonl, tb/       per-step loss/lr/grad-norm/gates, skipped steps; TensorBoard events
    samples/epoch-XXX.png    EMA sample grid per epoch (fixed prompts and seeds)
    evolution.png, loss.png, gates.png
    pipeline/                final QLDMPipeline with EMA weights (save_pretrained) + run_config.json

Determinism: the batch order of epoch e is a permutation drawn from ``seed`` and ``e`` alone, the diffusion
noise comes from one saved generator, and stochastic executors draw from torch's global RNG, which is saved
too. A run resumed from any checkpoint therefore replays exactly the steps an uninterrupted run would take.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
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

__all__ = ["TrainResult", "train", "build_optimizer", "epoch_order"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    cfg: RunConfig
    steps: int
    last_loss: float
    skipped_steps: int
    pipeline_dir: Path | None


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
    t = cfg.train
    accelerator = Accelerator(mixed_precision=t.mixed_precision)
    main = accelerator.is_main_process
    run_dir.mkdir(parents=True, exist_ok=True)

    # ---- data and frozen encoders (stage 1 when needed)
    dataset = load_dataset(cfg.data)
    # on resume keep every record for now; truncated to the checkpoint's step once that is known
    logger = MetricsLogger(run_dir, tensorboard=main, resume_step=2**62 if resume else None) if main else None
    log = logger.log if logger else None
    vae, cfg = load_or_train_vae(cfg, dataset, run_dir, show_progress=show_progress and main, log=log)
    save_config(cfg, run_dir / "run_config.json")
    latents, texts = cache_latents(vae, dataset, cfg, run_dir / "cache")  # (N, C, h, w), N captions
    torch.manual_seed(t.seed)  # model init depends only on the seed
    text_encoder = build_text_encoder(cfg.model)
    hidden, mask = encode_texts(text_encoder, texts)  # (N, L, D), (N, L)
    empty_hidden, empty_mask = text_encoder.empty(1)  # (1, L0, D): the same embedding sampling uses for CFG

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
                checkpoint(pos)
            if on_step is not None:
                on_step(pos, last_loss)
        if not complete:  # max_steps reached mid-epoch
            break
        pos = Position(step=step, epoch=epoch + 1, batch=0)
        if main and samples and (epoch + 1) % t.sample_every == 0:
            grids[epoch + 1] = _sample_grid(
                cfg, pipe_parts, raw, ema, run_dir / "samples" / f"epoch-{epoch + 1:03d}.png"
            )
            evolution_figure(grids, run_dir / "evolution.png")
        checkpoint(pos)
        if step >= total:
            break
    bar.close()
    done = latest_checkpoint(ckpt_root)
    if done is None or done.name != f"step-{step:08d}":
        checkpoint(pos)
    accelerator.wait_for_everyone()
    out = None
    if main:
        records = read_metrics(run_dir / "metrics.jsonl")
        plot_loss(records, run_dir / "loss.png")
        plot_gates(records, run_dir / "gates.png")
        if export:
            out = _export(cfg, pipe_parts, raw, ema, run_dir)
        logger.close()
    return TrainResult(run_dir, cfg, step, last_loss, skipped, out)
