"""Checkpoint rotation that never leaves zero intact checkpoints, and recovery from a save a kill interrupted.

A save (:func:`qldm.train.checkpoint.save_checkpoint`) writes ``.tmp-step-N-<pid>``, fsyncs it, and :func:`install`
renames it to ``step-N``; a ``step-N`` already there is first moved aside to ``.old-step-N-<pid>`` and deleted only
after the rename. Checkpoints beyond ``keep`` are renamed to ``.del-step-*`` before they are deleted, so no
half-deleted ``step-*`` folder is ever seen. A kill at any point leaves the previous checkpoint, a complete new one
under a hidden name, or both, and :func:`recover_interrupted` reads every such leftover before it decides.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

__all__ = ["PHASE_HOOK", "discard", "fsync", "fsync_tree", "install", "phase", "recover_interrupted"]

_STEP_DIR = re.compile(r"^step-(\d{8})$")
_LEFTOVER = re.compile(r"^\.(tmp|old|del)-step-(\d{8})-\d+$")

# Fault injection: called with the name of each phase of a save as it is reached ("writing", "written", "synced",
# "moved-aside", "installed", "discarding", "done"). Tests set it to end the process there, as a kill would, so
# that every partial state of a rotation is resumed from; it is None in normal use.
PHASE_HOOK: Callable[[str], None] | None = None


def phase(name: str) -> None:
    if PHASE_HOOK is not None:
        PHASE_HOOK(name)


def fsync(path: Path) -> None:
    """Flush a file or a directory entry to disk, so a rename that follows cannot land before the data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    for child in folder.iterdir():
        fsync(child)
    fsync(folder)


def install(new: Path, final: Path) -> None:
    """Rename the complete folder ``new`` to ``final``; a checkpoint already there is moved aside first, not deleted.

    At every instant a complete copy exists: ``final`` itself, or ``new`` plus the moved-aside ``.old-step-*``.
    """
    root = final.parent
    aside = None
    if final.exists():  # the same step saved twice (e.g. mid-epoch, then at the epoch's end)
        aside = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, aside)
        fsync(root)
        phase("moved-aside")
    os.replace(new, final)
    fsync(root)
    phase("installed")
    if aside is not None:
        shutil.rmtree(aside)


def discard(folder: Path) -> None:
    """Remove a superseded checkpoint: renamed out of the ``step-*`` names first, so no half-deleted one remains."""
    match = _STEP_DIR.match(folder.name)
    doomed = folder.with_name(f".del-step-{match.group(1)}-{os.getpid()}") if match else folder
    os.replace(folder, doomed)
    phase("discarding")
    shutil.rmtree(doomed, ignore_errors=True)


def _reads_whole(folder: Path) -> bool:
    from qldm.train.checkpoint import CheckpointDamaged, read_checkpoint  # it imports this module

    try:
        read_checkpoint(folder)
    except (CheckpointDamaged, FileNotFoundError):
        return False
    return True


def recover_interrupted(root: str | os.PathLike) -> list[str]:
    """Finish or undo a save that a killed process left half done. Call it only while holding the run folder.

    Every leftover is read before anything is removed:

    - a complete ``.tmp-step-N-*`` is the newest save: it is installed as ``step-N`` (a ``step-N`` already there is
      superseded); an incomplete one died mid-write and is removed;
    - an ``.old-step-N-*`` is a checkpoint moved aside for a save of the same step: put back if ``step-N`` is
      missing, removed once ``step-N`` reads whole;
    - a ``.del-step-*`` was being deleted by rotation and is removed.

    Args:
        root: The ``checkpoints/`` folder (a missing one holds nothing to recover).

    Returns:
        One line per leftover that was installed or put back (also issued as a warning).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    leftovers: dict[str, list[tuple[Path, str]]] = {"tmp": [], "old": [], "del": []}
    for path in sorted(root.iterdir()):
        match = _LEFTOVER.match(path.name)
        if match and path.is_dir():
            leftovers[match.group(1)].append((path, f"step-{match.group(2)}"))
    notes = []
    for path, _ in leftovers["del"]:
        shutil.rmtree(path, ignore_errors=True)
    for path, name in leftovers["tmp"]:
        if _reads_whole(path):
            install(path, root / name)
            notes.append(f"installed {name} from {path.name}, a complete save interrupted before its rename")
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path, name in leftovers["old"]:
        final = root / name
        if not final.exists() and _reads_whole(path):
            os.replace(path, final)
            fsync(root)
            notes.append(f"restored {name} from {path.name}, moved aside by an interrupted save")
        elif final.exists() and _reads_whole(final):
            shutil.rmtree(path, ignore_errors=True)
        # else: neither copy reads whole; keep it for the user to inspect rather than delete the last data
    for note in notes:
        warnings.warn(f"{root}: {note}", UserWarning, stacklevel=2)
    return notes
