"""``qldm train``: train the hybrid latent diffusion model (stage 1 VAE if needed, then the denoiser)."""

from __future__ import annotations

import argparse

from qldm.commands.common import config_parent, out_parent, progress_parent, resolve_config


def parents() -> list[argparse.ArgumentParser]:
    return [
        config_parent(),
        out_parent(help="run directory (checkpoints, samples, metrics, pipeline)"),
        progress_parent(),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest intact checkpoint (its saved config is used; --set may "
        "change only train.epochs, train.max_steps, train.checkpoint_every, train.keep_checkpoints, "
        "train.log_every and train.sample_every; run with the same number of processes)",
    )
    parser.add_argument("--no-samples", action="store_true", help="skip the per-epoch sample grids")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qldm.config import apply_overrides, load_config
    from qldm.train import train

    out = Path(args.out)
    if args.resume:
        if not (out / "run_config.json").is_file():
            raise ValueError(f"--resume: {out} holds no run_config.json; nothing to resume")
        cfg = apply_overrides(load_config(out), list(args.overrides))
    else:
        cfg = resolve_config(args)
    result = train(cfg, out, resume=args.resume, show_progress=not args.no_progress, samples=not args.no_samples)
    if not result.main_process:  # the other ranks of a multi-process run: the main one reports
        return 0
    print(f"trained {result.steps} steps (last loss {result.last_loss:.4f}, {result.skipped_steps} skipped) -> {out}")
    if result.pipeline_dir is not None:
        print(f"pipeline: {result.pipeline_dir}")
    return 0
