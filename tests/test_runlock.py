"""One writer per run folder (qldm/train/runlock.py): a second process is refused; a killed one frees the folder."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qldm.cli import main
from qldm.train.checkpoint import read_checkpoint
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


def test_a_second_training_into_a_busy_folder_is_refused_and_the_first_is_unharmed(tmp_path, capsys):
    """Issue 11 §1: two trainings in one --out corrupted each other; now the second gets one line and exit 2."""
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "qldm.cli", "train", "--preset", "micro", "--set", "train.epochs=3"]
    first = subprocess.Popen([*cmd, "--out", str(out), "--no-progress"], env=env, cwd=root, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while not (out / "vae" / "config.json").is_file():  # as in the report: once its stage 1 exists
            assert first.poll() is None and time.monotonic() < deadline, "the first run ended early"
            time.sleep(0.2)
        for command in ("train", "train-vae"):
            assert main([command, "--preset", "micro", "--set", "train.seed=1", "--out", str(out)]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and f"in use by another qldm process (pid {first.pid}" in err[0], err
        assert first.wait(600) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "step" in r] == [1, 2, 3, 4, 5, 6]  # each step once, from one run
    assert json.loads((out / "run_config.json").read_text())["train"]["seed"] == 0
    for ckpt in (out / "checkpoints").glob("step-*"):
        assert read_checkpoint(ckpt)["state"]["position"]["step"] in (4, 6)
    assert not list(out.glob(".tmp-*"))
