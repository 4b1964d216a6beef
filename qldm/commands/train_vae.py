"""``qldm train-vae``: stage 1 alone: train the small VAE on the data set and measure its latent scale."""

from __future__ import annotations

import argparse

from qldm.commands.common import add_config_arguments, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", required=True, help="run directory; the VAE goes to OUT/vae")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qldm.config import save_config
    from qldm.train.components import load_dataset
    from qldm.train.progress import MetricsLogger
    from qldm.train.vae import load_or_train_vae

    cfg = resolve_config(args)
    out = Path(args.out)
    if (out / "vae" / "config.json").is_file():
        raise ValueError(f"{out / 'vae'} already exists; choose a new --out")
    dataset = load_dataset(cfg.data)
    logger = MetricsLogger(out, tensorboard=False, resume_step=0)
    _, cfg = load_or_train_vae(cfg, dataset, out, show_progress=not args.no_progress, log=logger.log)
    logger.close()
    save_config(cfg, out / "run_config.json")
    print(f"VAE -> {out / 'vae'}  latent_scale={cfg.model.latent_scale:.5f} (stored in {out / 'run_config.json'})")
    print(f"continue with: qldm train --config {out / 'run_config.json'} --out {out}")
    return 0
