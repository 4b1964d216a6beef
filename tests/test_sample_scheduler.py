"""``qldm sample --scheduler``: the project's samplers by short name, or any compatible diffusers class by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qldm.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sched") / "run"
    assert main(["train", "--preset", "micro", "--set", "sample.seeds=0", "--out", str(out), "--no-progress"]) == 0
    return out


def _sample(run_dir, out, scheduler: str) -> np.ndarray:
    argv = ["sample", "--run", str(run_dir), "--prompt", "anime face, blue hair", "--n", "1", "--steps", "3"]
    assert main([*argv, "--scheduler", scheduler, "--out", str(out), "--no-progress"]) == 0
    return np.asarray(Image.open(out / "images" / "p00-000.png"), dtype=float)


def test_a_compatible_class_name_samples(run_dir, tmp_path):
    ddim = _sample(run_dir, tmp_path / "ddim", "ddim")
    euler = _sample(run_dir, tmp_path / "euler", "EulerDiscreteScheduler")
    unipc = _sample(run_dir, tmp_path / "unipc", "UniPCMultistepScheduler")
    assert ddim.shape == euler.shape == unipc.shape
    assert np.abs(ddim - euler).mean() > 0 and np.abs(euler - unipc).mean() > 0  # each sampler ran its own steps


def test_an_unknown_sampler_is_one_line_listing_the_compatible_ones(run_dir, tmp_path, capsys):
    argv = ["sample", "--run", str(run_dir), "--n", "1", "--steps", "2", "--out", str(tmp_path / "o")]
    assert main([*argv, "--scheduler", "NoSuchScheduler"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'NoSuchScheduler'" in err[0] and "EulerDiscreteScheduler" in err[0]
