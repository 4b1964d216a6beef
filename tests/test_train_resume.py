"""Seeded training killed mid-epoch and resumed equals uninterrupted training, with EMA and a stochastic circuit."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from qldm.config import apply_overrides, make_preset
from qldm.train import train
from qldm.train.checkpoint import latest_checkpoint

# The micro preset on 48 procedural 32 px faces: 6 steps per epoch, one epoch boundary inside the run.
MICRO = ["data.limit=48", "train.epochs=2", "train.warmup_steps=2"]


def _executor_override() -> list[str]:
    """The stochastic executor: ``branch`` (sampled ancilla branches) when it exists, else shuffled outputs."""
    try:
        import qldm.quantum.statevector.branch  # noqa: F401

        return ["model.qffn.executor=branch"]
    except ImportError:
        return ["model.qffn.branch=shuffled"]


class _Killed(Exception):
    pass


def _losses(run_dir):
    return {
        r["step"]: r["loss"]
        for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if "step" in r
    }


def test_resume_mid_epoch_matches_uninterrupted(tmp_path):
    cfg = apply_overrides(
        make_preset("micro"),
        MICRO + _executor_override() + ["train.ema_decay=0.9", "train.checkpoint_every=2"],
    )
    full = train(cfg, tmp_path / "full", show_progress=False, export=False, samples=False)
    assert full.steps == 12

    def kill(pos, loss):  # the process dies after step 5 (epoch 1, batch 5 of 6); the last checkpoint is step 4
        if pos.step == 5:
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg, tmp_path / "cut", show_progress=False, export=False, samples=False, on_step=kill)
    last = latest_checkpoint(tmp_path / "cut" / "checkpoints")
    assert last.name == "step-00000004"  # mid-epoch: batch 4 of 6
    resumed = train(cfg, tmp_path / "cut", resume=True, show_progress=False, export=False, samples=False)
    assert resumed.steps == 12

    a = latest_checkpoint(tmp_path / "full" / "checkpoints")
    b = latest_checkpoint(tmp_path / "cut" / "checkpoints")
    assert a.name == b.name == "step-00000012"
    for name in ("unet.safetensors", "ema.safetensors"):
        wa, wb = load_file(str(a / name)), load_file(str(b / name))
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-6, atol=1e-7, msg=f"{name}:{k}")
    la, lb = _losses(tmp_path / "full"), _losses(tmp_path / "cut")
    assert sorted(la) == sorted(lb) == list(range(1, 13))  # the resumed log has each step exactly once
    for s in la:
        assert la[s] == pytest.approx(lb[s], rel=1e-6, abs=1e-8)
    # EMA really differs from the weights (it is on), and training really moved the weights
    wa, ea = load_file(str(a / "unet.safetensors")), load_file(str(a / "ema.safetensors"))
    assert any(not torch.equal(ea[k], wa[k]) for k in ea)


def test_resume_refuses_without_checkpoint_and_overwrite_without_resume(tmp_path):
    cfg = apply_overrides(make_preset("micro"), MICRO + ["train.max_steps=1"])
    with pytest.raises(ValueError, match="no checkpoint"):
        train(cfg, tmp_path / "r", resume=True, show_progress=False)
    train(cfg, tmp_path / "r", show_progress=False, export=False, samples=False)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(cfg, tmp_path / "r", show_progress=False)
