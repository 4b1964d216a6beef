"""One writer per output folder: an exclusive OS lock held for the life of the process.

Two commands writing one ``--out`` interleave checkpoints, metrics, images and reports without any error. The lock is
``flock`` on ``<out>/.qldm.lock`` (through the ``filelock`` package's ``UnixFileLock``): the kernel drops it when the
process dies (even on ``kill -9``), so a killed run never leaves a stale lock behind and a rerun or ``--resume`` takes
the folder over at once. The holder's pid and command line sit beside it in ``<out>/.qldm.lock.json``, kept out of the
lock file itself because some ``filelock`` versions truncate that file when they open it.

Commands whose output is one file (``qldm bp --out study.json``) lock that file instead: ``.<name>.lock`` beside it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RunFolderBusy", "RunLock", "file_lock"]

LOCK_NAME = ".qldm.lock"


class RunFolderBusy(ValueError):
    """Another live process holds the output: an input error (a busy ``--out``), so commands report one line."""


def file_lock(path: str | os.PathLike, *, timeout: float = -1):
    """An flock-based ``filelock`` lock on ``path`` that dies with its process (never the soft, file-exists kind).

    Args:
        path: The lock file (created if missing; never deleted, so every waiter locks the same inode).
        timeout: Seconds to wait; 0 fails at once, -1 waits forever.

    Returns:
        An unacquired ``filelock.UnixFileLock``.
    """
    from filelock import UnixFileLock

    kwargs = {}
    # newer filelock falls back to a marker-file lock where flock is missing; such a lock outlives a killed process
    if "fallback_to_soft" in inspect.signature(UnixFileLock.__init__).parameters:
        kwargs["fallback_to_soft"] = False
    return UnixFileLock(str(path), timeout=timeout, **kwargs)


class RunLock:
    """Context manager: exclusive ownership of ``folder`` (created if missing), or of one output file in it.

    Args:
        folder: The output folder.
        name: The lock file's name in ``folder``; the default locks the whole folder.
        what: How the message names what is busy.

    Raises:
        RunFolderBusy: On entry, if another process holds it; the message names its pid and command.
    """

    def __init__(self, folder: str | os.PathLike, *, name: str = LOCK_NAME, what: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.owner_path = self.folder / f"{name}.json"
        self.what = what or f"run folder {self.folder}"
        self._lock = None
        self._created = False

    @classmethod
    def for_file(cls, path: str | os.PathLike) -> RunLock:
        """The lock of one output file: ``.<name>.lock`` in its folder."""
        path = Path(path)
        return cls(path.parent, name=f".{path.name}.lock", what=f"output {path}")

    def __enter__(self) -> RunLock:
        from filelock import Timeout

        self._created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = file_lock(self.path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            try:
                owner = json.loads(self.owner_path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                owner = {}  # the holder has not written it yet
            who = f"pid {owner.get('pid', '?')}: {owner.get('command', '?')}"
            raise RunFolderBusy(
                f"{self.what} is in use by another qldm process ({who}); wait for it, or use another --out"
            ) from None
        owner = {"pid": os.getpid(), "command": " ".join(sys.argv), "since": time.time()}
        # informational only: on a full or read-only disk the command's own first write names the problem
        with contextlib.suppress(OSError):
            self.owner_path.write_text(json.dumps(owner))
        self._lock = lock
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lock is None:
            return
        # Tidy up while still holding the lock: nobody waits on a RunLock (it never blocks), so a process that
        # opened the old lock file is refused until the release, and one that comes later creates a fresh file.
        # A command refused before writing anything thus leaves no trace, not even the folder it would have made.
        for path in (self.owner_path, self.path):
            path.unlink(missing_ok=True)
        if self._created:
            with contextlib.suppress(OSError):  # not empty: the command wrote there, keep it
                self.folder.rmdir()
        self._lock.release()
        self._lock = None
