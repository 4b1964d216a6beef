"""Every cache entry is checked on read (cases 2 and 3 of the reliability issue): a torn transpiled circuit, a results
entry of the wrong shape and a latent file of the wrong shape each get one warning naming the file and are
recomputed; nothing else is lost and nothing is paid twice that could be reused."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from qiskit import qpy
from safetensors.torch import load_file, save_file

from qldm.cli import main
from qldm.config import apply_overrides, make_preset


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """A micro pipeline sampled once on the ``aer`` backend: its argv, output folder and first images."""
    from qldm.config import save_config
    from qldm.models import build_pipeline

    root = tmp_path_factory.mktemp("hw")
    cfg = make_preset("micro")
    build_pipeline(cfg.model).save_pretrained(root / "pipe")
    save_config(cfg, root / "pipe" / "run_config.json")
    out = root / "out"
    argv = ["sample", "--checkpoint", str(root / "pipe"), "--prompt", "anime face", "--n", "2", "--steps", "2"]
    argv += ["--quantum-backend", "aer", "--shots", "16", "--hardware-steps", "all", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    return argv, out


def _images(out):
    return [np.asarray(Image.open(out / "images" / f"p00-00{j}.png")) for j in range(2)]


def _journal(out):
    return (out / "hardware-cache" / "jobs.jsonl").read_text().splitlines()


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_torn_transpiled_circuit_is_recomputed_with_one_warning(sampled, caplog):
    argv, out = sampled
    jobs, images = _journal(out), _images(out)
    (entry,) = (out / "hardware-cache" / "transpiled").glob("*.qpy")
    whole = entry.read_bytes()
    entry.write_bytes(whole[: len(whole) // 2])  # torn by a kill or a full disk
    caplog.clear()
    assert main(argv) == 0
    warned = _warnings(caplog)
    assert len(warned) == 1 and str(entry) in warned[0] and "transpiling again" in warned[0], warned
    assert "\n" not in warned[0]
    assert _journal(out) == jobs  # the same circuit again: every result still comes from the cache, no job
    assert all(np.array_equal(a, b) for a, b in zip(_images(out), images))
    with open(entry, "rb") as fh:
        assert qpy.load(fh)[0].num_parameters > 0  # rewritten whole
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]  # no temporary file left


def test_a_results_entry_of_the_wrong_shape_is_recomputed_with_one_warning(sampled, caplog):
    argv, out = sampled
    jobs = _journal(out)
    entries = sorted((out / "hardware-cache" / "results").glob("*.npy"))
    assert len(entries) == 4
    # the last PUB written: no later step's inputs depend on it, so exactly its job is submitted again (damaging an
    # earlier step's entry lets float-level differences of the recomputed values reach later steps' cache keys)
    bad = max(entries, key=lambda e: e.stat().st_mtime_ns)
    shape = np.load(bad).shape
    np.save(bad, np.zeros(7))  # a valid file, but not this PUB's (n_obs, rows)
    caplog.clear()
    assert main(argv) == 0
    warned = _warnings(caplog)
    assert len(warned) == 1 and str(bad) in warned[0] and "recomputing" in warned[0], warned
    assert len(_journal(out)) == len(jobs) + 1  # one job for the one bad entry (aer jobs die with their process)
    assert np.load(bad).shape == shape
    assert sorted((out / "hardware-cache" / "results").glob("*.npy")) == entries


def test_a_latent_cache_entry_of_the_wrong_shape_is_recomputed_with_one_warning(tmp_path, caplog):
    from qldm.train import train

    cfg = apply_overrides(make_preset("micro"), ["train.max_steps=1"])
    out = tmp_path / "run"
    quiet = {"show_progress": False, "export": False, "samples": False}
    train(cfg, out, **quiet)
    (entry,) = (out / "cache").glob("latents-*.safetensors")
    before = load_file(str(entry))
    save_file({"mean": torch.zeros(3, 4), "std": torch.ones(3, 4)}, str(entry))  # loads, but not these latents
    caplog.clear()
    assert train(cfg, out, resume=True, **quiet).steps == 1
    warned = _warnings(caplog)
    assert len(warned) == 1 and str(entry) in warned[0] and "recomputing" in warned[0], warned
    after = load_file(str(entry))
    assert all(torch.equal(before[k], after[k]) for k in ("mean", "std"))  # the same latents, recomputed
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]
