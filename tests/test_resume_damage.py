"""Resume survives damaged files (a torn metrics record, a truncated newest checkpoint) and refuses what it cannot do:
a changed model, batch or other shape-changing key, and a stale ``vae/`` of another config."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from qldm.cli import main
from qldm.config import apply_overrides, make_preset
from qldm.train import train
from qldm.train.checkpoint import latest_checkpoint

# 16 micro faces at batch 8: 2 steps per epoch, 4 steps in all, a checkpoint after every step
SETS = ["train.epochs=2", "train.checkpoint_every=1", "train.keep_checkpoints=4", "train.warmup_steps=1"]
QUIET = {"show_progress": False, "export": False, "samples": False}


class _Killed(Exception):
    pass


def _kill_after(step: int):
    def on_step(pos, loss):
        if pos.step == step:
            raise _Killed

    return on_step


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and the config it ran."""
    cfg = apply_overrides(make_preset("micro"), SETS)
    out = tmp_path_factory.mktemp("ref") / "run"
    assert train(cfg, out, **QUIET).steps == 4
    return cfg, out


def _same_result(a, b) -> None:
    for name in ("unet.safetensors", "ema.safetensors"):
        wa, wb = (load_file(str(latest_checkpoint(r / "checkpoints") / name)) for r in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    la, lb = ([json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()] for r in (a, b))
    steps = [r["step"] for r in lb if "step" in r]
    assert steps == [1, 2, 3, 4]  # each step once, the torn record gone
    assert [r.get("loss") for r in la if "step" in r] == [r.get("loss") for r in lb if "step" in r]


def test_resume_drops_a_torn_metrics_record(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    with pytest.raises(_Killed):
        train(cfg, out, on_step=_kill_after(3), **QUIET)
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 4, "epoch": 2, "lo')  # the process died mid-append
    with pytest.warns(UserWarning, match="torn last record"):
        assert train(cfg, out, resume=True, **QUIET).steps == 4
    _same_result(ref, out)


def test_resume_falls_back_from_a_truncated_newest_checkpoint(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    with pytest.raises(_Killed):
        train(cfg, out, on_step=_kill_after(3), **QUIET)
    newest = out / "checkpoints" / "step-00000003" / "unet.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # copied or written half
    with pytest.warns(UserWarning, match=r"step-00000003/unet.safetensors cannot be read.*resuming from step-00000002"):
        assert train(cfg, out, resume=True, **QUIET).steps == 4
    _same_result(ref, out)


def test_no_loadable_checkpoint_is_one_clear_error(reference, tmp_path):
    _, ref = reference
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    for state in (out / "checkpoints").glob("step-*/state.pt"):
        state.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="no loadable checkpoint under .*state.pt cannot be read"):
        train(reference[0], out, resume=True, **QUIET)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.qffn.n_qubits=3", "model.qffn.n_qubits"),
        ("model.unet_block_channels=32,64", "model.unet_block_channels"),
        ("train.batch_size=4", "train.batch_size"),
        ("data.limit=24", "data.limit"),
    ],
)
def test_resume_refuses_shape_changing_overrides(reference, tmp_path, capsys, override, key):
    _, ref = reference
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert main(["train", "--out", str(out), "--resume", "--set", override, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0] and "train.max_steps" in err[0]  # names the key and what may change
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before


def test_resume_accepts_a_longer_run(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    assert train(apply_overrides(cfg, ["train.epochs=3"]), out, resume=True, **QUIET).steps == 6


def test_a_stale_vae_of_another_config_is_refused(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    (out).mkdir()
    shutil.copytree(ref / "vae", out / "vae")  # left by a killed run, or copied there
    other = apply_overrides(cfg, ["model.latent_channels=3"])
    with pytest.raises(ValueError, match=r"holds a VAE with latent_channels=4 but the config asks for 3"):
        train(other, out, **QUIET)
    wider = apply_overrides(cfg, ["model.vae_block_channels=16,32"])
    with pytest.raises(ValueError, match="block_out_channels"):
        train(wider, out, **QUIET)
    assert not (out / "checkpoints").exists()
    assert train(cfg, out, **QUIET).steps == 4  # the matching config reuses it
