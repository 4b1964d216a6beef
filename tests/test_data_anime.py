"""Tests on the shared real faces (../shared/data/anime-faces-64); skipped when the folder is absent."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from qldm.config import DataConfig, apply_overrides, make_preset
from qldm.data import (
    HAIR_COLORS,
    HOLDOUT_SIZE,
    anime_holdout_names,
    build_dataset,
    default_anime_faces_path,
    evaluate_captioner,
    format_confusion,
    load_hair_labels,
)
from qldm.data.images import list_image_names

ROOT = default_anime_faces_path()
pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not ROOT.is_dir(), reason=f"anime faces not found at {ROOT} (set QLDM_ANIME_FACES)"),
]

# Measured when the labels were committed: 139/216 = 0.644, Wilson 95% CI 0.578-0.704 on the held-out "eval" split
# (majority class "brown" is 47/216 = 0.218, uniform chance 1/11). The captioner is deterministic, so a rerun gives the
# same count unless the JPEG decoder changes; the bar is the measured lower bound minus a margin of about 0.03 for
# decoder differences between Pillow builds. It fails if the captioner or the labels regress.
MIN_ACCURACY = 0.55


def test_loads_real_faces_with_content_captions():
    ds = build_dataset("anime-faces", image_size=32, limit=12)
    assert len(ds) == 12 and ds.skipped == []
    item = ds[0]
    assert item["pixel_values"].shape == (3, 32, 32)
    assert item["pixel_values"].min() >= -1.0 and item["pixel_values"].max() <= 1.0
    assert item["attributes"]["hair_color"] in HAIR_COLORS
    assert item["text"] == f"anime face, {item['attributes']['hair_color']} hair"
    assert "year" in item["attributes"]  # metadata.jsonl extras are kept
    assert len({ds[i]["text"] for i in range(12)}) > 2  # captions depend on the picture


def test_labels_are_committed_and_disjoint():
    evals, tunes = load_hair_labels("eval"), load_hair_labels("tune")
    assert len(evals) >= 200 and len(tunes) >= 100
    assert not {f for f, _ in evals} & {f for f, _ in tunes}
    assert all((ROOT / f).is_file() for f, _ in evals + tunes)


def test_captioner_accuracy_on_hand_labels():
    result = evaluate_captioner(ROOT, split="eval")
    print(format_confusion(result))
    assert result.n == len(load_hair_labels("eval"))
    assert result.accuracy >= MIN_ACCURACY, format_confusion(result)
    assert result.ci_low < result.accuracy < result.ci_high
    assert result.confusion.sum() == result.n


def test_holdout_split_is_fixed_and_never_trained_on():
    held = anime_holdout_names()
    assert len(held) == HOLDOUT_SIZE and held == anime_holdout_names(ROOT)
    names = list_image_names(ROOT)
    assert held <= set(names)
    first = names[:400]
    assert set(first) & held  # the slice below really has held-out files to skip
    from qldm.train.components import load_dataset

    train = load_dataset(DataConfig(source="anime-faces", image_size=16, limit=400))  # what a run trains on
    assert not set(train.file_names) & held
    assert train.file_names == [n for n in names if n not in held][:400]
    holdout = build_dataset("anime-faces", image_size=16, split="holdout")
    assert set(holdout.file_names) == held and len(holdout) == HOLDOUT_SIZE
    assert train.dataset_id != build_dataset("anime-faces", image_size=16, limit=400, split="all").dataset_id


# A real-face run at micro size with the headline circuit: 16 data qubits, per-qubit ancillas (32 wires), exact
# tensor network, in the bottleneck; the VAE trains on random crops. 24 images, 3 VAE steps, 3 denoiser steps.
MICRO_REAL = [
    "data.limit=24",
    "model.vae_block_channels=8,16,32",
    "model.unet_block_channels=16,32,32",
    "model.attention_levels=1,2",
    "model.attention_head_dim=8",
    "model.text_dim=16",
    "model.text_layers=1",
    "model.text_heads=2",
    "model.quantum_blocks=bottleneck",
    "model.qffn.n_qubits=16",
    "model.qffn.ancillas=per-qubit",
    "model.qffn.executor=tensornet",
    "train.vae_crop=32",
    "train.vae_epochs=1",
    "train.vae_batch_size=8",
    "train.batch_size=8",
    "train.epochs=1",
    "train.warmup_steps=1",
    "train.log_every=1",
    "sample.steps=2",
    "sample.seeds=0",
]


def test_tiny_real_face_run_end_to_end_and_resume_reuses_stage_one(tmp_path):
    from qldm.train import train

    cfg = apply_overrides(make_preset("anime64"), MICRO_REAL)
    assert cfg.model.qffn.spec().num_qubits == 32
    run = tmp_path / "run"
    result = train(cfg, run, show_progress=False)
    assert result.steps == 3 and result.skipped_steps == 0
    assert set(result.timings) >= {"data", "vae", "latents", "denoiser", "sampling", "total"}
    assert result.timings["denoiser_steps"] == 3
    info = json.loads((run / "timings.json").read_text())["calls"]
    assert len(info) == 1 and info[0]["latent_cache"] == "computed" and info[0]["timings_s"] == result.timings
    assert info[0]["cpu_s"] == result.cpu_timings
    assert (run / "vae" / "latent_scale.txt").is_file() and result.pipeline_dir is not None
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("vae_loss" in r for r in records)
    assert any(k.startswith("gate/") for r in records for k in r)
    grid = Image.open(run / "samples" / "epoch-001.png")  # 4 prompts x 1 seed of 64 px faces, 2 px padding
    assert grid.size == (4 * 66 + 2, 66 + 2)
    # a resume loads the VAE and the latents from disk instead of recomputing them
    vae_mtime = (run / "vae" / "config.json").stat().st_mtime_ns
    again = train(result.cfg, run, resume=True, show_progress=False, export=False)
    assert again.steps == 3 and again.timings["denoiser_steps"] == 0
    calls = json.loads((run / "timings.json").read_text())["calls"]
    assert [c["latent_cache"] for c in calls] == ["computed", "reused"] and calls[1]["resumed"]
    assert (run / "vae" / "config.json").stat().st_mtime_ns == vae_mtime
    # a second run on the first run's VAE reuses its latent cache too
    second = apply_overrides(result.cfg, [f"train.vae_pretrained={run / 'vae'}", "train.max_steps=1"])
    train(second, tmp_path / "second", show_progress=False, export=False, samples=False)
    assert json.loads((tmp_path / "second" / "timings.json").read_text())["calls"][0]["latent_cache"] == "reused"
    assert not (tmp_path / "second" / "cache").exists()
