"""``qldm train`` / ``train-vae`` / ``sample`` end to end on the micro preset, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from qldm.cli import main

MICRO = ["--preset", "micro", "--set", "sample.seeds=0"]  # the micro preset, one sample seed


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *MICRO, "--out", str(out), "--no-progress"]) == 0
    return out


def test_train_writes_the_documented_run_layout(run_dir):
    for name in (
        "run_config.json",
        "metrics.jsonl",
        "loss.png",
        "gates.png",
        "evolution.png",
        "samples/epoch-001.png",
        "vae/config.json",
        "pipeline/model_index.json",
    ):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").iterdir())  # TensorBoard events
    cfg = json.loads((run_dir / "run_config.json").read_text())
    assert cfg["model"]["latent_scale"] != 1.0  # measured by stage 1 and stored
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "step" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in steps)
    assert any(k.startswith("gate/") for k in steps[-1])  # lambda logged per block
    assert {"lr/classical", "lr/quantum", "lr/gate"} <= set(steps[-1])


def test_sample_from_run_and_from_checkpoint(run_dir, tmp_path):
    out = tmp_path / "s"
    args = [
        "sample",
        "--run",
        str(run_dir),
        "--prompt",
        "anime face, blue hair",
        "--prompt",
        "anime face, red hair",
        "--n",
        "2",
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    files = sorted(p.name for p in (out / "images").iterdir())
    assert files == ["p00-000.png", "p00-001.png", "p01-000.png", "p01-001.png"]
    assert Image.open(out / "images" / files[0]).size == (32, 32)
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape[0] > 64 and grid.shape[1] > 64
    # same seed -> same images
    assert main([*args[:-1], str(tmp_path / "s2")]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "grid.png")), np.asarray(Image.open(tmp_path / "s2/grid.png")))
    # a training checkpoint (EMA weights) samples too, with another executor
    ckpt = sorted((run_dir / "checkpoints").iterdir())[-1]
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(ckpt),
                "--n",
                "1",
                "--steps",
                "2",
                "--out",
                str(tmp_path / "c"),
                "--quantum-executor",
                "tensornet",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "c" / "images").iterdir())) == 4  # the run's four grid prompts


def test_sample_refuses_a_different_circuit(run_dir, tmp_path, capsys):
    code = main(["sample", "--run", str(run_dir), "--expect", "model.qffn.n_qubits=3", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "qldm sample: error:" in err and "n_qubits" in err and "checkpoint has 2, requested 3" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--set", "train.nosuch=1"], "unknown config key 'train.nosuch'"),
        (["train", "--set", "train.epochs=many"], "train.epochs='many' is not an int"),
        (["train", "--set", "model.qffn.n_qubits=13"], "needs 26 wires"),
        (["train", "--preset", "huge"], "unknown preset 'huge'"),
        (["train-vae", "--set", "model.quantum_blocks=middle"], "quantum_blocks='middle'"),
        (["demo", "--set", "train.mixed_precision=fp8"], "is not one of ['no', 'fp16', 'bf16']"),
    ],
)
def test_bad_config_is_one_clear_error(args, message, tmp_path, capsys):
    code = main([*args, "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"qldm {args[0]}: error:") and message in err[0]
    assert not (tmp_path / "o").exists()  # nothing was started


def test_data_folder_without_images_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    code = main(["train", *MICRO, "--set", f"data.source={empty}", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "qldm train: error:" in err and "image" in err


def test_resume_without_run_is_an_error(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_sample_runs_the_bottleneck_on_a_backend_for_chosen_steps(run_dir, tmp_path):
    pytest.importorskip("hardware.sampling")
    base = ["sample", "--run", str(run_dir), "--prompt", "anime face, blue hair", "--n", "1", "--steps", "2"]
    assert main([*base, "--out", str(tmp_path / "exact")]) == 0
    hw = [
        "--quantum-backend",
        "aer",
        "--shots",
        "8",
        "--hardware-steps",
        "all",
        "--hardware-blocks",
        "bottleneck",
    ]
    assert main([*base, "--out", str(tmp_path / "hw"), *hw]) == 0
    exact = np.asarray(Image.open(tmp_path / "exact" / "images" / "p00-000.png"), float)
    shots = np.asarray(Image.open(tmp_path / "hw" / "images" / "p00-000.png"), float)
    assert exact.shape == shots.shape
    assert 0 < np.abs(exact - shots).mean() < 40  # shot noise in the bottleneck at every step: close, not equal


def test_train_vae_then_train_reuses_the_stage1_vae(tmp_path):
    out = tmp_path / "staged"
    assert main(["train-vae", *MICRO, "--out", str(out), "--no-progress"]) == 0
    cfg = json.loads((out / "run_config.json").read_text())
    scale = cfg["model"]["latent_scale"]
    assert scale > 0 and scale != 1.0 and (out / "vae" / "config.json").is_file()
    vae_mtime = (out / "vae" / "diffusion_pytorch_model.safetensors").stat().st_mtime
    assert main(["train-vae", *MICRO, "--out", str(out)]) == 2  # never overwrites a trained VAE
    args = [
        "train",
        "--config",
        str(out / "run_config.json"),
        "--set",
        "train.max_steps=1",
        "--out",
        str(out),
    ]
    assert main([*args, "--no-progress", "--no-samples"]) == 0
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").stat().st_mtime == vae_mtime
    assert json.loads((out / "run_config.json").read_text())["model"]["latent_scale"] == scale
