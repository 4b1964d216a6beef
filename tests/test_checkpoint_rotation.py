"""Checkpoint rotation never leaves zero intact checkpoints: training is killed at every phase of a save (by an
injected hook, not by timing), and each time the resumed run ends bit-exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest
import torch
from safetensors.torch import load_file

from qldm.config import apply_overrides, make_preset
from qldm.train import rotation, train
from qldm.train.checkpoint import latest_checkpoint, read_checkpoint, recover_interrupted

# 16 micro faces at batch 8: 2 steps per epoch, 4 in all. One checkpoint kept and one saved after every step, so
# the saves are: step 1, step 2, step 2 again at the epoch's end (same step: replaced), step 3, step 4, step 4 again.
SETS = ["train.epochs=2", "train.checkpoint_every=1", "train.keep_checkpoints=1", "train.warmup_steps=1"]
QUIET = {"show_progress": False, "export": False, "samples": False}
KILLED = 9

# (which save is killed, at which phase, the (step, epoch, batch) of the checkpoint a resume must start from)
# save 2 writes step 2 and rotates step 1 out; save 3 replaces step 2 (mid-epoch) by step 2 (epoch end)
CASES = [
    (2, "writing", (1, 0, 1)),  # died mid-write: the incomplete folder is dropped, step 1 is intact
    (2, "written", (2, 0, 2)),  # complete but never renamed in: installed, not deleted
    (2, "synced", (2, 0, 2)),
    (2, "installed", (2, 0, 2)),  # step 1 still there beside step 2
    (2, "discarding", (2, 0, 2)),  # step 1 renamed for deletion, not yet deleted
    (2, "done", (2, 0, 2)),
    (3, "writing", (2, 0, 2)),
    (3, "written", (2, 1, 0)),
    (3, "synced", (2, 1, 0)),
    (3, "moved-aside", (2, 1, 0)),  # the old step 2 moved aside, the new one not yet renamed in: no step-2 at all
    (3, "installed", (2, 1, 0)),
    (3, "done", (2, 1, 0)),
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cfg = apply_overrides(make_preset("micro"), SETS)
    out = tmp_path_factory.mktemp("ref") / "run"
    assert train(cfg, out, **QUIET).steps == 4
    return cfg, out


def _train_until_killed(cfg, out: str, save: int, phase: str) -> None:
    """The child process: trains, and ends itself at ``phase`` of its ``save``-th checkpoint, as kill -9 would."""
    seen = {"saves": 0}

    def hook(name: str) -> None:
        if name == "writing":
            seen["saves"] += 1
        if seen["saves"] == save and name == phase:
            os._exit(KILLED)  # no cleanup, no finally blocks, no flushed buffers: a hard kill

    rotation.PHASE_HOOK = hook
    train(cfg, out, **QUIET)
    os._exit(0)


def _weights(run):
    last = latest_checkpoint(run / "checkpoints")
    return {name: load_file(str(last / name)) for name in ("unet.safetensors", "ema.safetensors")}


def _losses(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r.get("loss")) for r in map(json.loads, lines) if "step" in r]


@pytest.mark.parametrize(("save", "phase", "expect"), CASES, ids=[f"save{s}-{p}" for s, p, _ in CASES])
def test_kill_at_every_phase_of_a_save_resumes_bit_exactly(reference, tmp_path, save, phase, expect):
    cfg, ref = reference
    out = tmp_path / "run"
    # spawn, not fork: a child forked after the parent's OpenMP pool exists deadlocks in its first parallel region
    child = mp.get_context("spawn").Process(target=_train_until_killed, args=(cfg, str(out), save, phase))
    child.start()
    child.join(300)
    assert child.exitcode == KILLED  # the phase was reached and the run died there

    if phase in ("written", "synced", "moved-aside"):  # the new save exists only as a complete temporary folder
        with pytest.warns(UserWarning, match=r"installed step-0000000\d from \.tmp-step-"):
            assert len(recover_interrupted(out / "checkpoints")) == 1
    else:
        assert recover_interrupted(out / "checkpoints") == []
    steps = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert steps and all(name.startswith("step-") for name in steps), steps  # no leftover, at least one checkpoint
    position = read_checkpoint(latest_checkpoint(out / "checkpoints"))["state"]["position"]
    assert (position["step"], position["epoch"], position["batch"]) == expect

    assert train(cfg, out, resume=True, **QUIET).steps == 4
    want, got = _weights(ref), _weights(out)
    for name in want:
        assert want[name].keys() == got[name].keys()
        assert all(torch.equal(want[name][k], got[name][k]) for k in want[name]), name
    assert _losses(out) == _losses(ref)
    assert [s for s, _ in _losses(out)] == [1, 2, 3, 4]
