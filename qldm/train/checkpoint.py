"""Atomic training checkpoints: safetensors weights, JSON config, optimizer / lr-scheduler / EMA / RNG state.

A checkpoint is a directory ``checkpoints/step-00000123/`` holding

- ``unet.safetensors``: the trained weights; ``ema.safetensors``: the EMA shadow weights (same names);
- ``run_config.json``: the run's config;
- ``state.pt``: optimizer, lr scheduler, EMA counters, the RNG states (python, numpy, torch CPU/CUDA, the
  diffusion noise generator), the data position (epoch, batch within the epoch, global step) and, for a model
  with Q-FFNs, ``quantum``: its ``circuit_metadata()`` (the circuit fingerprint) and every block's
  ``executor.describe()``.

It is written into a hidden temporary directory and renamed into place with ``os.replace``, which is atomic on one
file system: a run killed mid-write leaves the previous checkpoint untouched and at most a stale ``.tmp-*`` folder,
which the next save removes. Loading refuses a checkpoint whose circuit fingerprint differs from the model's.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from qldm.config import RunConfig, save_config
from qldm.models.unet import check_circuit_compatible

__all__ = [
    "Position",
    "capture_rng",
    "restore_rng",
    "save_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
]

_STEP_DIR = re.compile(r"^step-(\d{8})$")


@dataclass(frozen=True)
class Position:
    """Where training stands: ``step`` optimizer steps done, in ``epoch`` after ``batch`` batches of it."""

    step: int = 0
    epoch: int = 0
    batch: int = 0


def capture_rng(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Snapshot every RNG a training step touches (stochastic executors draw from torch's global RNG)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def _named_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def _ema_tensors(module: torch.nn.Module, ema: Any) -> dict[str, torch.Tensor]:
    names = [n for n, _ in module.named_parameters()]
    return {n: p.detach().contiguous().cpu() for n, p in zip(names, ema.shadow_params)}


def _quantum_state(module: torch.nn.Module) -> dict[str, Any] | None:
    """The circuit metadata and executor descriptions of a ``QLDMUNet`` (None for a model without them)."""
    if not hasattr(module, "circuit_metadata"):
        return None
    return {"circuit": module.circuit_metadata(), "executors": module.executor_descriptions()}


def save_checkpoint(
    root: str | os.PathLike,
    *,
    position: Position,
    cfg: RunConfig,
    unet: torch.nn.Module,
    ema: Any,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    generator: torch.Generator | None,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write one checkpoint atomically under ``root`` and keep only the newest ``keep``.

    Args:
        root: The ``checkpoints/`` folder.
        position: Training position after the last finished step.
        cfg: The run config (saved as JSON).
        unet: The trained (unwrapped) model.
        ema: A diffusers ``EMAModel`` over ``unet.parameters()``.
        optimizer, lr_scheduler: Their ``state_dict`` is saved.
        generator: The diffusion-noise generator, saved with the other RNG states.
        extra: Small picklable extras (e.g. the epochs' grid paths).
        keep: Number of newest checkpoints to keep.

    Returns:
        The final checkpoint directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{position.step:08d}"
    tmp = root / f".tmp-step-{position.step:08d}-{os.getpid()}"
    tmp.mkdir()
    try:
        save_file(_named_tensors(unet), str(tmp / "unet.safetensors"))
        save_file(_ema_tensors(unet, ema), str(tmp / "ema.safetensors"))
        save_config(cfg, tmp / "run_config.json")
        ema_meta = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
        state = {
            "position": position.__dict__,
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": lr_scheduler.state_dict(),
            "ema": ema_meta,
            "rng": capture_rng(generator),
            "extra": extra or {},
            "quantum": _quantum_state(unet),
        }
        torch.save(state, tmp / "state.pt")
        if final.exists():  # same step saved twice (e.g. end of epoch == end of run): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in _step_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint under ``root`` (temporary folders are ignored), or None."""
    dirs = _step_dirs(Path(root))
    return dirs[-1] if dirs else None


def load_checkpoint(
    path: str | os.PathLike,
    *,
    unet: torch.nn.Module,
    ema: Any,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    generator: torch.Generator | None,
) -> tuple[Position, dict[str, Any]]:
    """Restore everything :func:`save_checkpoint` wrote, in place. Returns ``(position, extra)``.

    Raises:
        FileNotFoundError: If ``path`` is not a checkpoint directory.
        CircuitMismatchError: (a ``ValueError``) If the checkpoint's circuit differs from ``unet``'s (its
            fingerprint, with the differing builder arguments named), before anything is restored.
    """
    path = Path(path)
    if not (path / "state.pt").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint (no state.pt)")
    state = torch.load(path / "state.pt", weights_only=False)
    saved, current = state.get("quantum"), _quantum_state(unet)
    if saved is not None and current is not None:
        check_circuit_compatible(saved["circuit"], current["circuit"])
    unet.load_state_dict(load_file(str(path / "unet.safetensors")))
    shadow = load_file(str(path / "ema.safetensors"))
    ema.shadow_params = [shadow[n].to(p.device) for n, p in unet.named_parameters()]
    optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    for k, v in state["ema"].items():
        setattr(ema, k, v)
    restore_rng(state["rng"], generator)
    return Position(**state["position"]), state.get("extra", {})
