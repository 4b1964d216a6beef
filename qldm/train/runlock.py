"""One writer per run folder: an exclusive OS lock held for the life of the process.

Two trainings writing one ``--out`` interleave checkpoints, metrics and exported pipelines without any error. The
lock is ``flock`` on ``<out>/.qldm.lock``: the kernel drops it when the process dies (even on ``kill -9``), so a
killed run never leaves a stale lock behind and ``--resume`` takes the folder over at once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RunFolderBusy", "RunLock"]

LOCK_NAME = ".qldm.lock"


class RunFolderBusy(ValueError):
    """Another live process holds the run folder: an input error (a busy ``--out``), so commands report one line."""


class RunLock:
    """Context manager: exclusive ownership of ``folder`` (created if missing).

    Args:
        folder: The run folder.

    Raises:
        RunFolderBusy: On entry, if another process holds the folder; the message names its pid and command.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl  # POSIX; imported here so that importing the package works everywhere

        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                owner = json.loads(fh.read() or "{}")
            except json.JSONDecodeError:
                owner = {}
            fh.close()
            who = f"pid {owner.get('pid', '?')}: {owner.get('command', '?')}"
            raise RunFolderBusy(
                f"run folder {self.folder} is in use by another qldm process ({who}); wait for it, or use another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv), "since": time.time()}))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor releases the flock
            self._fh = None
