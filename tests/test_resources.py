"""Out of disk, out of memory and oversized requests end in one line and exit 2, before damage or long work (cases 5
and 11 of the reliability issue)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qldm.cli import main
from qldm.train.checkpoint import latest_checkpoint, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _one_error_line(capsys, code: int, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"qldm {command}: error: "), (code, err)
    return err[0]


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs: room for one micro checkpoint (about 4 MiB) beside the VAE and latents, not for two."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(small_disk, capsys):
    out = small_disk / "run"
    argv = ["train", "--preset", "micro", "--set", "train.epochs=2", "--set", "train.checkpoint_every=1"]
    line = _one_error_line(capsys, main([*argv, "--out", str(out), "--no-progress"]), "train")
    assert "no space left" in line and str(out / "checkpoints") in line and "MiB needed" in line, line
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step-00000001"]  # the one that fitted, whole; no partial folder
    assert read_checkpoint(latest_checkpoint(out / "checkpoints"))["state"]["position"]["step"] == 1


def test_a_billion_images_are_refused_up_front_with_the_estimate(tmp_path, capsys):
    from qldm.config import make_preset, save_config
    from qldm.models import build_pipeline

    cfg = make_preset("micro")
    build_pipeline(cfg.model).save_pretrained(tmp_path / "pipe")
    save_config(cfg, tmp_path / "pipe" / "run_config.json")
    out = tmp_path / "out"
    argv = ["sample", "--checkpoint", str(tmp_path / "pipe"), "--n", "1000000000", "--out", str(out)]
    capsys.readouterr()  # the pipeline's own save bar
    line = _one_error_line(capsys, main(argv), "sample")
    # 4 prompts x 1e9 images x 32 x 32 x 3 float32, held twice (the list and the grid): 89.4 TiB
    assert "= 4000000000 images of 32x32 would hold about 89.4 TiB" in line and "available" in line, line
    assert not (out / "images").exists() and not (out / "set.json").exists()


def test_drawing_a_200_qubit_circuit_is_refused_up_front_with_the_estimate(tmp_path, capsys):
    png = tmp_path / "c.png"
    line = _one_error_line(capsys, main(["circuit", "--n-qubits", "200", "--draw", str(png)]), "circuit")
    # 400 wires (200 data, 200 ancillas), depth 407 -> 11 folds of 40 layers, 235 px per wire row and fold
    assert "400 wires at depth 407 would be a 3250 x 1034000 px image" in line and "limit is 100" in line, line
    assert not png.exists()


def test_running_out_of_memory_is_one_line(tmp_path):
    """A real allocation failure: the process may address 2 GiB; drawing a 30-qubit circuit (within the drawing
    limit) needs more."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "qldm.cli", "circuit", "--n-qubits", "30", "--draw", str(tmp_path / "c.png")]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, preexec_fn=limit, timeout=600)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and "out of memory" in err[0], (done.returncode, err[-5:])
    assert "fingerprint" in done.stdout  # it failed while drawing, not while starting
    assert not (tmp_path / "c.png").exists()
