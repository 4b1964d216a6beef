"""``qldm train-vae``: stage 1 alone: train the small VAE on the data set and measure its latent scale.

Writes ``OUT/vae``, ``OUT/run_config.json``, ``OUT/metrics.jsonl`` and TensorBoard events (``OUT/tb``: loss per epoch
and the reconstruction grid) and ``OUT/vae_reconstructions.png`` (inputs above their reconstructions). It holds
``OUT`` like ``qldm train`` does, so the two never write one folder at once.
"""

from __future__ import annotations

import argparse

from qldm.commands.common import config_parent, out_parent, progress_parent, resolve_config


def parents() -> list[argparse.ArgumentParser]:
    return [config_parent(), out_parent(help="run directory; the VAE goes to OUT/vae"), progress_parent()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: the run config, ``--out`` and ``--no-progress`` come from :func:`parents`."""


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qldm.config import save_config
    from qldm.train.components import load_dataset
    from qldm.train.progress import MetricsLogger
    from qldm.train.runlock import RunLock
    from qldm.train.vae import load_or_train_vae, reconstruction_grid

    cfg = resolve_config(args)
    out = Path(args.out)
    with RunLock(out):  # a busy --out raises RunFolderBusy, a ValueError: one line, exit 2
        if (out / "vae" / "config.json").is_file():
            raise ValueError(f"{out / 'vae'} already exists; choose a new --out")
        dataset = load_dataset(cfg.data)
        logger = MetricsLogger(out, tensorboard=True, resume_step=0)
        try:
            vae, cfg = load_or_train_vae(cfg, dataset, out, show_progress=not args.no_progress, log=logger.log)
            grid = reconstruction_grid(vae, dataset, out / "vae_reconstructions.png")
            logger.image("vae/reconstructions", grid, cfg.train.vae_epochs)
        finally:
            logger.close()
        save_config(cfg, out / "run_config.json")
    print(f"VAE -> {out / 'vae'}  latent_scale={cfg.model.latent_scale:.5f} (stored in {out / 'run_config.json'})")
    print(f"reconstructions: {grid}; TensorBoard: {out / 'tb'}")
    print(f"continue with: qldm train --config {out / 'run_config.json'} --out {out}")
    return 0
