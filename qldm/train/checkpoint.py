"""Atomic training checkpoints: safetensors weights, JSON config, optimizer / lr-scheduler / EMA / RNG state.

A checkpoint is a directory ``checkpoints/step-00000123/`` holding

- ``unet.safetensors``: the trained weights; ``ema.safetensors``: the EMA shadow weights (same names);
- ``run_config.json``: the run's config;
- ``state.pt``: optimizer, lr scheduler, EMA counters, the fp16 GradScaler (if any), the RNG states (python, numpy,
  torch CPU/CUDA, the diffusion noise generator) of every process, the number of processes, the data position (epoch,
  batch within the epoch, global step) and, for a model with Q-FFNs, ``quantum``: its ``circuit_metadata()`` (the
  circuit fingerprint) and every block's ``executor.describe()``.

Rotation never leaves zero intact checkpoints. A save writes a hidden ``.tmp-step-*`` folder, fsyncs it, renames it
into place with ``os.replace`` (atomic on one file system) and only then removes what it supersedes: a checkpoint of
the same step is first moved aside to ``.old-step-*``, older ones beyond ``keep`` to ``.del-step-*``. A run killed at
any point of this leaves the previous checkpoint, a complete ``.tmp-step-*`` or both. :func:`recover_interrupted`
(run by the next save and by a resuming training, under the run lock) reads every such leftover before deciding: a
complete new save is installed, a moved-aside checkpoint whose replacement never arrived is put back, and only what
reads as incomplete or superseded is removed. Loading refuses a checkpoint whose circuit fingerprint differs from the
model's, and :func:`newest_loadable` skips a damaged checkpoint (a truncated file, a full disk) for the newest intact
one.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from qldm.config import RunConfig, save_config
from qldm.models.unet import check_circuit_compatible
from qldm.train import rotation
from qldm.train.rotation import recover_interrupted

__all__ = [
    "Position",
    "capture_rng",
    "restore_rng",
    "save_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "newest_loadable",
    "CheckpointDamaged",
    "recover_interrupted",
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
    scaler: Any = None,
    rank_rngs: list[dict[str, Any]] | None = None,
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
        scaler: The fp16 ``GradScaler`` (its state is saved), or None.
        rank_rngs: Under several processes, every rank's :func:`capture_rng` (with its noise generator), in rank
            order; None: this process's alone.

    Returns:
        The final checkpoint directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rotation.recover_interrupted(root)
    final = root / f"step-{position.step:08d}"
    tmp = root / f".tmp-step-{position.step:08d}-{os.getpid()}"
    tmp.mkdir()
    try:
        save_file(_named_tensors(unet), str(tmp / "unet.safetensors"))
        rotation.phase("writing")
        save_file(_ema_tensors(unet, ema), str(tmp / "ema.safetensors"))
        save_config(cfg, tmp / "run_config.json")
        ema_meta = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
        state = {
            "position": position.__dict__,
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": lr_scheduler.state_dict(),
            "ema": ema_meta,
            "rng": capture_rng(generator),
            "rank_rngs": rank_rngs or [capture_rng(generator)],
            "scaler": scaler.state_dict() if scaler is not None else None,
            "extra": extra or {},
            "quantum": _quantum_state(unet),
        }
        torch.save(state, tmp / "state.pt")  # written last: a readable state.pt means the folder is complete
        rotation.phase("written")
        rotation.fsync_tree(tmp)
        rotation.phase("synced")
    except BaseException as err:
        free, written = shutil.disk_usage(root).free, _size(tmp)  # measured before the partial copy is removed
        shutil.rmtree(tmp, ignore_errors=True)  # an incomplete save; the previous checkpoints are untouched
        _raise_if_out_of_space(err, root, free=free, need=max([written] + [_size(p) for p in _step_dirs(root)]))
        raise
    rotation.install(tmp, final)
    for old in _step_dirs(root)[:-keep]:
        rotation.discard(old)
    rotation.phase("done")
    return final


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def _raise_if_out_of_space(err: BaseException, root: Path, *, free: int, need: int) -> None:
    """Raise a one-line ``OSError(ENOSPC)`` naming ``root`` and the space a checkpoint needs, if ``err`` was a full
    disk. torch and safetensors report a failed write as a ``RuntimeError`` without the errno, so a failed write
    with (almost) no space left on the device is taken for a full disk."""
    nospace = isinstance(err, OSError) and err.errno == errno.ENOSPC
    failed_write = isinstance(err, (RuntimeError, SafetensorError, OSError)) and free < max(need // 4, 1 << 20)
    if not (nospace or failed_write):
        return
    mib, left = 1 << 20, shutil.disk_usage(root).free
    raise OSError(
        errno.ENOSPC,
        f"no space left to write a checkpoint (about {need / mib:.1f} MiB needed, {left / mib:.1f} MiB free; the "
        "previous checkpoints are intact); free some space and rerun with --resume",
        str(root),
    ) from err


def _step_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint under ``root`` (temporary folders are ignored), or None."""
    dirs = _step_dirs(Path(root))
    return dirs[-1] if dirs else None


class CheckpointDamaged(ValueError):
    """A checkpoint folder whose files cannot be read (truncated, garbled, missing)."""


# what reading a truncated or garbled file raises: safetensors, pickle (torch.load) and the OS
_READ_ERRORS = (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, SafetensorError)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read every file of a checkpoint into memory, touching no model: ``state.pt`` plus ``unet`` / ``ema`` tensors.

    Raises:
        FileNotFoundError: If ``path`` is not a checkpoint directory.
        CheckpointDamaged: If a file of it cannot be read; the message names the file.
    """
    path = Path(path)
    if not (path / "state.pt").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint (no state.pt)")
    data: dict[str, Any] = {"path": path}
    for key, name in (("state", "state.pt"), ("unet", "unet.safetensors"), ("ema", "ema.safetensors")):
        try:
            if name.endswith(".pt"):
                data[key] = torch.load(path / name, weights_only=False)
            else:
                data[key] = load_file(str(path / name))
        except _READ_ERRORS as err:
            raise CheckpointDamaged(f"{path / name} cannot be read ({type(err).__name__}: {err})") from None
    return data


def newest_loadable(root: str | os.PathLike) -> dict[str, Any] | None:
    """The newest checkpoint under ``root`` that reads whole (see :func:`read_checkpoint`), or None if there is none.

    A damaged newer one (a run killed mid-write outside the atomic rename, a truncated copy) is skipped with a warning
    that names it and the checkpoint used instead.

    Raises:
        ValueError: If checkpoints exist but none of them can be read.
    """
    dirs = _step_dirs(Path(root))
    damaged: list[str] = []
    for path in reversed(dirs):
        try:
            data = read_checkpoint(path)
        except (CheckpointDamaged, FileNotFoundError) as err:
            damaged.append(str(err))
            continue
        if damaged:
            warnings.warn(
                f"skipped damaged checkpoint(s): {'; '.join(damaged)}; resuming from {path.name}",
                UserWarning,
                stacklevel=2,
            )
        return data
    if damaged:
        raise ValueError(f"no loadable checkpoint under {root}: {'; '.join(damaged)}")
    return None


def load_checkpoint(
    path: str | os.PathLike | dict[str, Any],
    *,
    unet: torch.nn.Module,
    ema: Any,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    generator: torch.Generator | None,
    scaler: Any = None,
    process_index: int = 0,
    num_processes: int = 1,
) -> tuple[Position, dict[str, Any]]:
    """Restore everything :func:`save_checkpoint` wrote, in place. Returns ``(position, extra)``.

    Args:
        path: A checkpoint folder, or what :func:`read_checkpoint` returned for one.
        unet, ema, optimizer, lr_scheduler, generator: Restored in place.
        scaler: The fp16 ``GradScaler`` to restore, or None.
        process_index: This process's rank: it takes that rank's RNG states.
        num_processes: How many processes resume the run (must equal the number that saved it).

    Raises:
        FileNotFoundError: If ``path`` is not a checkpoint directory.
        CheckpointDamaged: If one of its files cannot be read.
        CircuitMismatchError: (a ``ValueError``) If the checkpoint's circuit differs from ``unet``'s (its fingerprint,
            with the differing builder arguments named), before anything is restored.
        ValueError: If it was saved by another number of processes (the data position would not match), or
            without the GradScaler state an fp16 run needs.
    """
    data = path if isinstance(path, dict) else read_checkpoint(path)
    state = data["state"]
    saved, current = state.get("quantum"), _quantum_state(unet)
    if saved is not None and current is not None:
        check_circuit_compatible(saved["circuit"], current["circuit"])
    rank_rngs = state.get("rank_rngs") or [state["rng"]]
    if len(rank_rngs) != num_processes:
        raise ValueError(
            f"{data['path']} was saved by {len(rank_rngs)} process(es), resumed by {num_processes}; resume with "
            f"{len(rank_rngs)} (each rank's data slice and random streams depend on the count)"
        )
    if scaler is not None and state.get("scaler") is None and state["position"]["step"] > 0:
        raise ValueError(f"{data['path']} holds no GradScaler state; an fp16 run cannot resume from it exactly")
    unet.load_state_dict(data["unet"])
    shadow = data["ema"]
    ema.shadow_params = [shadow[n].to(p.device) for n, p in unet.named_parameters()]
    optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    for k, v in state["ema"].items():
        setattr(ema, k, v)
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    restore_rng(rank_rngs[process_index], generator)
    return Position(**state["position"]), state.get("extra", {})
