"""Several processes, one run: building the Accelerator, main-process-only stages, per-rank seeds and averages.

A run launched by ``accelerate launch`` or ``torchrun`` is data parallel (DDP): every rank trains on its own slice of
each batch, and only the main process writes into the run folder. Two launcher pitfalls are handled here:

- On a machine without CUDA, ``Accelerator()`` only becomes multi-process when it is told to use the CPU
  (``ACCELERATE_USE_CPU``, set by ``accelerate launch --cpu``); ``torchrun`` sets no such variable, so every rank saw
  ``DistributedType.NO`` and ran a whole copy of the run. :func:`make_accelerator` asks for the CPU explicitly when
  there is no GPU.
- ``accelerate launch --cpu --num_processes 2`` (and ``--num_processes 2`` without ``--multi_gpu`` or an
  ``accelerate config``) starts one ordinary process and drops the count. The process cannot see the lost count in its
  environment, so :func:`requested_processes` reads it from the launcher's command line and the run is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = [
    "make_accelerator",
    "requested_processes",
    "on_main_first",
    "rank_seed",
    "gather_from_ranks",
    "mean_over_ranks",
    "all_ranks_agree",
]

T = TypeVar("T")


def _launcher_count(argv: list[str]) -> int | None:
    """``--num_processes N`` of an ``accelerate launch`` command line, or None if it is not one."""
    if not any(Path(a).name == "accelerate" or a.endswith("accelerate_cli.py") for a in argv[:3]):
        return None
    if "launch" not in argv[:4]:
        return None
    for i, arg in enumerate(argv):
        if arg == "--num_processes" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return int(argv[i + 1])
        if arg.startswith("--num_processes=") and arg.split("=", 1)[1].isdigit():
            return int(arg.split("=", 1)[1])
    return None


def requested_processes() -> int:
    """How many processes the launcher was asked for: ``WORLD_SIZE``, else the parent ``accelerate launch``'s count.

    Returns 1 when nothing asked for more (a plain ``python -m qldm.cli``), or when the parent's command line
    cannot be read (not Linux).
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        return world
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return 1
    return _launcher_count([a.decode(errors="replace") for a in raw.split(b"\0") if a]) or 1


def make_accelerator(mixed_precision: str):
    """The run's ``Accelerator``; data parallel whenever the launcher started several processes.

    Args:
        mixed_precision: ``"no"``, ``"fp16"`` or ``"bf16"`` (already resolved for the device).

    Returns:
        An ``accelerate.Accelerator``.

    Raises:
        ValueError: If the launch asked for several processes but this one sees itself alone, with the command that does
            start them.
    """
    from accelerate import Accelerator

    # without CUDA, accelerate only forms a multi-process group when told to use the CPU (see the module docstring)
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())
    wanted = requested_processes()
    if wanted > 1 and accelerator.num_processes == 1:
        raise ValueError(
            f"the launch asked for {wanted} processes but this one runs alone; accelerate launch --cpu (or "
            "--num_processes without --multi_gpu) starts one process: use 'accelerate launch --multi_gpu "
            f"--num_processes {wanted} -m qldm.cli train ...' (on CPU too) or 'torchrun --nproc_per_node {wanted}'"
        )
    return accelerator


def rank_seed(seed: int, process_index: int) -> int:
    """A rank's seed: ``seed`` itself on rank 0 (a one-process run is unchanged), distinct on the others."""
    return seed + 1_000_003 * process_index


def gather_from_ranks(accelerator, obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in a one-process run."""
    if accelerator.num_processes == 1:
        return [obj]
    from accelerate.utils import gather_object

    return list(gather_object([obj]))


def all_ranks_agree(accelerator, flag: bool) -> bool:
    """True only if ``flag`` is true on every rank (a skipped step must be skipped everywhere, or DDP hangs)."""
    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor(1.0 if flag else 0.0, device=accelerator.device)
    return bool(accelerator.reduce(t, reduction="sum").item() == accelerator.num_processes)


def mean_over_ranks(accelerator, value: torch.Tensor) -> float:
    """The mean of a scalar tensor over all ranks (the logged loss of a data-parallel step)."""
    if accelerator.num_processes == 1:
        return float(value.detach())
    return float(accelerator.reduce(value.detach().float().reshape(()), reduction="mean"))


def on_main_first(accelerator, work: Callable[[], T], then: Callable[[], T] | None = None) -> T:
    """Run ``work`` on the main process; the others wait, then run ``then`` (e.g. load what the main one wrote).

    An exception on the main process is passed to the other ranks, which raise a ``ValueError`` with the same
    message instead of waiting forever.

    Args:
        accelerator: The run's Accelerator.
        work: The main process's task (the only one allowed to write).
        then: The other ranks' task after ``work`` has finished; None: they run ``work`` too.

    Returns:
        The result of ``work`` (main) or ``then`` (others).

    Raises:
        Whatever ``work`` raises on the main process; ``ValueError`` with its message on the others.
    """
    if accelerator.num_processes == 1:
        return work()
    result: Any = None
    error: BaseException | None = None
    if accelerator.is_main_process:
        try:
            result = work()
        except Exception as err:  # noqa: BLE001 - passed on to the waiting ranks, then re-raised below
            error = err
    messages = gather_from_ranks(accelerator, str(error) if error is not None else None)
    if error is not None:
        raise error
    if messages[0] is not None:
        raise ValueError(messages[0])
    if accelerator.is_main_process:
        return result
    return (then or work)()
