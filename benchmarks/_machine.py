"""The machine and checkout a benchmark ran on, recorded the same way by every script in ``benchmarks/``.

The scripts run as ``python benchmarks/x.py``, which puts ``benchmarks/`` first on ``sys.path``, so they import this
file as ``from _machine import machine_info``. Each script keeps the JSON key names it has always written (RESULTS.md,
tests and older result files read them) by picking and renaming the keys of :func:`machine_info`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name.

    Returns:
        The first ``model name`` of ``/proc/cpuinfo`` (Linux x86), else ``platform.processor()``, which is often
        only the architecture and may be ``""``.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux, or /proc not mounted
        pass
    return platform.processor()


def _git(root: str | Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    except OSError:  # no git executable
        return None


def git_commit(root: str | Path = ROOT, *, short: bool = True) -> str | None:
    """The commit checked out at ``root``, so that a result names the code that produced it.

    Args:
        root: Any folder inside the checkout (default: this repository).
        short: Abbreviated hash (``git rev-parse --short``, 7+ hex digits) if True, the full 40 digits otherwise.

    Returns:
        The hex hash, or ``None`` outside a git checkout or without git.
    """
    run = _git(root, "rev-parse", *(["--short"] if short else []), "HEAD")
    return run.stdout.strip() if run is not None and run.returncode == 0 else None


def git_dirty(root: str | Path = ROOT) -> bool | None:
    """Whether the checkout at ``root`` differs from its commit (modified, staged or untracked files).

    Returns:
        ``True``/``False``, or ``None`` outside a git checkout or without git.
    """
    run = _git(root, "status", "--porcelain")
    return bool(run.stdout.strip()) if run is not None and run.returncode == 0 else None


def machine_info(
    threads: int | None = None,
    *,
    extra: dict | None = None,
    root: str | Path = ROOT,
    short_commit: bool = True,
) -> dict:
    """What a benchmark result must name: the machine, the load it ran under, the code and the date.

    Args:
        threads: Torch threads the benchmark uses; default ``torch.get_num_threads()`` at the time of the call.
        extra: Further entries (versions, GPU name), added after the standard ones and overriding them.
        root: Checkout whose commit and dirty flag are recorded (default: this repository).
        short_commit: Record the abbreviated commit hash if True, the full one otherwise.

    Returns:
        ``{"cpu": str, "cores": int | None, "threads": int, "torch": str, "commit": str | None,
        "dirty": bool | None, "date_utc": "YYYY-MM-DDTHH:MM:SSZ", "load_avg": (1, 5, 15 min)}`` then ``extra``.
        ``cores`` is ``os.cpu_count()`` (logical cores); ``load_avg`` is taken now, so call this at the start of a
        run to record the load it started under.
    """
    import torch  # here, not at the top: the scripts that need only git_commit do not pay for importing torch

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "torch": torch.__version__,
        "commit": git_commit(root, short=short_commit),
        "dirty": git_dirty(root),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_avg": os.getloadavg(),
    }
    return info | (extra or {})
