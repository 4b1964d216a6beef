"""Training: stage 1 VAE, stage 2 latent diffusion with Accelerate, atomic checkpoints, progress output.

Heavy submodules (the loop imports the model package) load on first use, so ``qldm.train.checkpoint`` and
``qldm.train.progress`` stay importable on their own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train", "TrainResult", "build_optimizer", "epoch_order", "train_vae", "load_or_train_vae"]

_WHERE = {
    "train": "qldm.train.loop",
    "TrainResult": "qldm.train.loop",
    "build_optimizer": "qldm.train.loop",
    "epoch_order": "qldm.train.loop",
    "train_vae": "qldm.train.vae",
    "load_or_train_vae": "qldm.train.vae",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'qldm.train' has no attribute {name!r}")
