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
    skipped_files.tsv        data files that could not be read, with why (only when there are any)
    pipeline/                final QLDMPipeline with EMA weights (save_pretrained) + run_config.json

Determinism: the batch order of epoch e is a permutation drawn from ``seed`` and ``e`` alone, the diffusion noise
comes from one saved generator, and stochastic executors draw from torch's global RNG, which is saved too. A run
resumed from any checkpoint therefore replays exactly the steps an uninterrupted run would take.

Several processes (``accelerate launch`` / ``torchrun``, see :mod:`qldm.train.distributed`): rank r trains on slice r
of every batch, with its own noise generator; only the main process holds the run folder (:class:`RunLock`), trains
stage 1, builds the latent cache and writes anything, and a checkpoint stores every rank's RNG states, so a resume
with the same number of processes is exact too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from qldm.config import RunConfig, load_config, save_config
from qldm.quantum.layer import executor_lines
from qldm.train import distributed as dist
from qldm.train.checkpoint import (
    Position,
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    newest_loadable,
    recover_interrupted,
    save_checkpoint,
)
from qldm.train.components import build_unet, cache_latents, encode_texts, gate_values, grad_norms, load_dataset
from qldm.train.outputs import StageClock, append_timings, export_pipeline, sample_grid, write_plots, write_skipped
from qldm.train.progress import MetricsLogger, evolution_figure
from qldm.train.resume import check_resume_config
from qldm.train.runlock import RunLock
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
        main_process: False on the other ranks of a multi-process run (only the main one reports).
    """

    run_dir: Path
    cfg: RunConfig
    steps: int
    last_loss: float
    skipped_steps: int
    pipeline_dir: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)
    main_process: bool = True


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


def _stage_one(cfg: RunConfig, dataset, run_dir: Path, accelerator, clock: StageClock, *, show_progress: bool, log):
    """Stage-1 VAE and latent cache, made by the main process and then read by the others.

    Returns:
        ``(vae, cfg with the latent scale, latents (N, C, h, w), captions, cache_reused)``.
    """
    cache_dir = latent_cache_dir(cfg, run_dir)
    cached_before = set(cache_dir.glob("latents-*.safetensors"))

    def make():
        vae, c = load_or_train_vae(cfg, dataset, run_dir, show_progress=show_progress, log=log)
        save_config(c, run_dir / "run_config.json")
        clock.lap("vae")
        return vae, c, *cache_latents(vae, dataset, c, cache_dir)

    def read():  # the main process has written vae/ and the cache: load them, write nothing
        vae, c = load_or_train_vae(cfg, dataset, run_dir, show_progress=False)
        clock.lap("vae")
        return vae, c, *cache_latents(vae, dataset, c, cache_dir)

    vae, cfg, latents, texts = dist.on_main_first(accelerator, make, read)
    reused = not (set(cache_dir.glob("latents-*.safetensors")) - cached_before)
    return vae, cfg, latents, texts, reused


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
    """Train (stage 1 VAE if needed, then the diffusion model) into ``run_dir``, holding it for the whole run.

    Args:
        cfg: Validated run config.
        run_dir: Output folder (layout in the module docstring).
        resume: Continue from the newest loadable checkpoint in ``run_dir/checkpoints`` (mid-epoch if it was saved
            there; a damaged newer one is skipped with a warning). The config may differ from the checkpoint's only
            in :data:`qldm.train.resume.RESUMABLE_KEYS`. Without it, an existing checkpoint folder is an error, so a
            run is never overwritten.
        show_progress: tqdm bars.
        export: Write ``run_dir/pipeline`` at the end.
        samples: Write the per-epoch sample grids (also to TensorBoard) and the evolution figure.
        on_step: Called after every optimizer step with the new position and the loss (tests use it to kill a run).

    Raises:
        RunFolderBusy: (a ``ValueError``) If another process is training into ``run_dir``.
        ValueError: On ``resume`` without a loadable checkpoint or with a changed config, an existing run without
            ``resume``, a stale ``vae/`` that does not match the config, or a launch whose processes are missing.
    """
    if cfg.model.train_text_encoder:
        raise ValueError("model.train_text_encoder=True is not supported by this trainer (caption states are cached)")
    run_dir = Path(run_dir)
    cfg = resolve_precision(cfg, cuda=torch.cuda.is_available())
    accelerator = dist.make_accelerator(cfg.train.mixed_precision)
    with contextlib.ExitStack() as stack:
        # one writer per folder: the main process holds the lock until the run ends (or dies), and under it finishes
        # or undoes a checkpoint save that a killed run left half done, before any rank looks for checkpoints
        def hold() -> None:
            stack.enter_context(RunLock(run_dir))
            recover_interrupted(run_dir / "checkpoints")

        dist.on_main_first(accelerator, hold, lambda: None)
        quiet = contextlib.nullcontext() if accelerator.is_main_process else warnings.catch_warnings()
        with quiet:
            if not accelerator.is_main_process:
                warnings.simplefilter("ignore")  # the main process says it once
            return _train(cfg, run_dir, accelerator, resume, show_progress, export, samples, on_step)


def _train(
    cfg: RunConfig,
    run_dir: Path,
    accelerator,
    resume: bool,
    show_progress: bool,
    export: bool,
    samples: bool,
    on_step: Callable[[Position, float], None] | None,
) -> TrainResult:
    """The body of :func:`train`, run on every rank once the main process holds the folder."""
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from qldm.models import build_text_encoder, diffusion_loss, drop_captions, make_train_scheduler

    ckpt_root = run_dir / "checkpoints"
    if resume and latest_checkpoint(ckpt_root) is None:
        raise ValueError(f"--resume: no checkpoint under {ckpt_root}")
    if not resume and latest_checkpoint(ckpt_root) is not None:
        raise ValueError(f"{run_dir} already holds checkpoints; pass --resume to continue it or choose a new --out")
    start = newest_loadable(ckpt_root) if resume else None
    if start is not None:
        check_resume_config(load_config(start["path"]), cfg)
    t, main, rank, world = cfg.train, accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    clock = StageClock(STAGES)
    dataset = load_dataset(cfg.data)
    if main:
        write_skipped(dataset, run_dir)
    clock.lap("data")
    resume_step = start["state"]["position"]["step"] if start is not None else None
    logger = MetricsLogger(run_dir, tensorboard=True, resume_step=resume_step) if main else None
    log = logger.log if logger else None
    vae, cfg, latents, texts, cache_reused = _stage_one(
        cfg, dataset, run_dir, accelerator, clock, show_progress=show_progress and main, log=log
    )  # latents (N, C, h, w), N captions
    clock.lap("latents")
    torch.manual_seed(t.seed)  # model init depends only on the seed
    text_encoder = build_text_encoder(cfg.model)
    hidden, mask = encode_texts(text_encoder, texts)  # (N, L, D), (N, L)
    empty_hidden, empty_mask = text_encoder.empty(1)  # (1, L0, D): the same embedding sampling uses for CFG
    clock.lap("text")

    unet = build_unet(cfg)
    for line in executor_lines(unet):  # which executor runs each circuit, since presets name them
        logging.getLogger("qldm.train").info("%s", line)
    optimizer = build_optimizer(unet, cfg)
    n = latents.shape[0]
    per_epoch = n // (t.batch_size * world)
    if per_epoch < 1:
        raise ValueError(f"data set of {n} images is smaller than one batch of {t.batch_size} x {world} processes")
    total = min(t.max_steps or per_epoch * t.epochs, per_epoch * t.epochs)
    lr_scheduler = get_cosine_schedule_with_warmup(optimizer, min(t.warmup_steps, total // 2), total)
    ema = EMAModel(unet.parameters(), decay=t.ema_decay)
    noise_sched = make_train_scheduler(cfg.model)
    # each rank draws its own timesteps, noise and caption dropout; rank 0 keeps the one-process stream
    noise_gen = torch.Generator().manual_seed(dist.rank_seed(t.seed + 1, rank))
    if rank:
        torch.manual_seed(dist.rank_seed(t.seed, rank))  # stochastic executors draw from the global RNG
    pos, extra = Position(), {"grids": {}}
    if start is not None:
        pos, extra = load_checkpoint(
            start,
            unet=unet,
            ema=ema,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            generator=noise_gen,
            scaler=accelerator.scaler,
            process_index=rank,
            num_processes=world,
        )
    unet, optimizer = accelerator.prepare(unet, optimizer)
    raw = accelerator.unwrap_model(unet)
    ema.to(accelerator.device)
    pipe_parts = {"vae": vae, "text_encoder": text_encoder}
    grids = {int(k): Path(v) for k, v in extra.get("grids", {}).items()}
    saved_at = pos.step if start is not None else -1

    def checkpoint(p: Position) -> None:
        nonlocal saved_at
        rngs = dist.gather_from_ranks(accelerator, capture_rng(noise_gen))  # every rank calls: it is a collective
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
                scaler=accelerator.scaler,
                rank_rngs=rngs,
            )
        saved_at = p.step

    bar = tqdm(total=total, initial=pos.step, desc=f"train {cfg.name}", disable=not (show_progress and main))
    last_loss, skipped, step = float("nan"), 0, pos.step
    first_step = step
    clock.lap("denoiser")  # model build, optimizer and resume belong to the denoiser stage
    unet.train()
    for epoch in range(pos.epoch, t.epochs):
        order = epoch_order(n, t.seed, epoch)
        first = pos.batch if epoch == pos.epoch else 0
        complete = True
        for b in range(first, per_epoch):
            if step >= total:
                complete = False
                break
            rows = order[(b * world + rank) * t.batch_size :][: t.batch_size]  # this rank's slice of the batch
            lat = latents[rows].to(accelerator.device)  # (B, C, h, w)
            h, m = drop_captions(
                hidden[rows], mask[rows], empty_hidden, empty_mask, p=cfg.model.cfg_dropout, generator=noise_gen
            )  # (B, L, D), (B, L)
            with accelerator.autocast():
                loss = diffusion_loss(
                    unet, lat, h.to(lat.device), m.to(lat.device), noise_sched, cfg.model, generator=noise_gen
                )  # scalar
            record = {"step": step + 1, "epoch": epoch + 1}
            # a rank with a non-finite loss makes every rank skip: DDP needs all of them in backward or none
            finite_loss, gn = dist.all_ranks_agree(accelerator, bool(torch.isfinite(loss))), None
            mean_loss = dist.mean_over_ranks(accelerator, loss) if finite_loss else float("nan")
            if finite_loss:
                accelerator.backward(loss)
                if t.grad_clip > 0:
                    gn = accelerator.clip_grad_norm_(unet.parameters(), t.grad_clip)  # unscales under fp16
                if log and (step + 1) % t.log_every == 0:
                    record.update(grad_norms(raw))
            grad_ok = finite_loss and (gn is None or bool(torch.isfinite(torch.as_tensor(gn))))
            if finite_loss and (grad_ok or accelerator.scaler is not None):
                # under fp16 the GradScaler itself skips an inf step and lowers its scale; it must see it
                optimizer.step()
                grad_ok = grad_ok and not optimizer.step_was_skipped
            if grad_ok:
                ema.step(raw.parameters())
                last_loss = mean_loss
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
                clock.lap("denoiser")
                checkpoint(pos)
                clock.lap("checkpoints")
            if on_step is not None:
                on_step(pos, last_loss)
        clock.lap("denoiser")
        if not complete:  # max_steps reached mid-epoch
            break
        pos = Position(step=step, epoch=epoch + 1, batch=0)
        if main and samples and (epoch + 1) % t.sample_every == 0:
            path = run_dir / "samples" / f"epoch-{epoch + 1:03d}.png"
            grids[epoch + 1] = sample_grid(cfg, pipe_parts, raw, ema, path)
            logger.image("samples", path, step)
            evolution_figure(grids, run_dir / "evolution.png")
            clock.lap("sampling")
        checkpoint(pos)
        clock.lap("checkpoints")
        if step >= total:
            break
    bar.close()
    if saved_at != step:
        checkpoint(pos)
    accelerator.wait_for_everyone()
    clock.lap("checkpoints")
    out = None
    if main:
        write_plots(run_dir)
        if export:
            out = export_pipeline(cfg, pipe_parts, raw, ema, run_dir)
        logger.close()
    clock.lap("export")
    timings, cpu = ({k: round(v, 3) for k, v in d.items()} for d in (clock.wall, clock.cpu))
    timings.update(total=round(sum(timings.values()), 3), denoiser_steps=step - first_step)
    cpu.update(total=round(sum(cpu.values()), 3), denoiser_steps=step - first_step)
    if main:
        info = {"timings_s": timings, "cpu_s": cpu, "latent_cache": "reused" if cache_reused else "computed"}
        info.update(resumed=resume, processes=world, threads=torch.get_num_threads(), load_avg=os.getloadavg())
        append_timings(run_dir, info, resume=resume)
    accelerator.wait_for_everyone()  # no rank leaves (and tears the process group down) before the main one is done
    return TrainResult(run_dir, cfg, step, last_loss, skipped, out, timings, cpu, main_process=main)
