"""One writer per run folder (qldm/train/runlock.py): a second process is refused; a killed one frees the folder."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal

import pytest

from qldm.train.runlock import RunFolderBusy, RunLock


def _hold(folder: str, ready, stop) -> None:
    with RunLock(folder):
        ready.set()
        stop.wait(30)


def test_second_process_is_refused_and_kill_frees_the_folder(tmp_path):
    ctx = mp.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready, stop))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid}"), RunLock(tmp_path):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # no cleanup code runs: the kernel must release the lock
        holder.join(30)
    with RunLock(tmp_path):  # taken over at once
        pass


def test_same_process_reacquires_after_release(tmp_path):
    with RunLock(tmp_path / "run"):
        pass
    with RunLock(tmp_path / "run") as lock:
        assert lock.path.is_file()
