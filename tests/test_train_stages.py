"""Stage-level pieces of the trainer: the fp16 fallback on CPU, VAE random crops, where the latent cache lives."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from qldm.config import apply_overrides, make_preset, save_config
from qldm.train.loop import latent_cache_dir, resolve_precision
from qldm.train.vae import random_crops, train_vae


def test_fp16_falls_back_to_fp32_without_cuda_and_says_so():
    paper = make_preset("paper")
    assert paper.train.mixed_precision == "fp16"
    with pytest.warns(UserWarning, match="fp16' needs CUDA; no GPU found, so this run trains in fp32"):
        cpu = resolve_precision(paper, cuda=False)
    assert cpu.train.mixed_precision == "no"
    assert dataclasses.replace(cpu, train=paper.train) == paper  # nothing else changes
    assert resolve_precision(paper, cuda=True) is paper
    bf16 = apply_overrides(make_preset("tiny"), ["train.mixed_precision=bf16"])
    assert resolve_precision(bf16, cuda=False) is bf16  # bf16 runs on CPU: kept


def test_random_crops_are_windows_of_each_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    crops = random_crops(x, 4, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 1, 4, 4)
    for img, crop in zip(x, crops):
        # a window of the image: its top-left value fixes the offset, and the whole window must match
        i, j = divmod(int(crop[0, 0, 0] - img[0, 0, 0]), 6)
        assert torch.equal(img[:, i : i + 4, j : j + 4], crop)
    again = random_crops(x, 4, torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)


def test_vae_trains_on_crops_and_refuses_bad_crops():
    from qldm.data import ProceduralFaces

    micro = ["model.vae_block_channels=8,16", "train.vae_epochs=1", "train.vae_batch_size=4", "data.limit=8"]
    ds = ProceduralFaces(8, image_size=32, seed=0)
    vae, scale = train_vae(apply_overrides(make_preset("tiny"), [*micro, "train.vae_crop=16"]), ds, show_progress=False)
    assert scale > 0
    with torch.no_grad():  # trained on 16 px crops, used on whole 32 px images
        assert vae.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean.shape == (1, 4, 16, 16)
    for crop in (3, 64):
        with pytest.raises(ValueError, match=f"train.vae_crop={crop} must be 0"):
            train_vae(apply_overrides(make_preset("tiny"), [*micro, f"train.vae_crop={crop}"]), ds, show_progress=False)


def test_latent_cache_follows_a_reused_run_vae(tmp_path):
    cfg = make_preset("tiny")
    assert latent_cache_dir(cfg, tmp_path / "b") == tmp_path / "b" / "cache"
    (tmp_path / "a" / "vae").mkdir(parents=True)
    reuse = apply_overrides(cfg, [f"train.vae_pretrained={tmp_path / 'a' / 'vae'}"])
    assert latent_cache_dir(reuse, tmp_path / "b") == tmp_path / "b" / "cache"  # not a run folder (no config)
    save_config(cfg, tmp_path / "a" / "run_config.json")
    assert latent_cache_dir(reuse, tmp_path / "b") == tmp_path / "a" / "cache"


def test_latent_cache_key_survives_save_and_reload(tmp_path):
    from diffusers import AutoencoderKL

    from qldm.models import LatentCache, build_vae

    vae = build_vae(apply_overrides(make_preset("tiny"), ["model.vae_block_channels=8,16"]).model)
    vae.register_to_config(scaling_factor=0.37)
    vae.save_pretrained(tmp_path / "vae")
    back = AutoencoderKL.from_pretrained(tmp_path / "vae")  # adds _name_or_path etc. to its config
    back.register_to_config(scaling_factor=1.5)  # cached latents are unscaled: the scale is not part of the key
    cache = LatentCache(tmp_path / "cache")
    assert cache.key(back, dataset_id="d", image_size=32) == cache.key(vae, dataset_id="d", image_size=32)
    with torch.no_grad():
        back.decoder.conv_out.bias.add_(1.0)
    assert cache.key(back, dataset_id="d", image_size=32) != cache.key(vae, dataset_id="d", image_size=32)


def _tensorboard(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events.Tags()


def test_training_logs_sample_grids_and_gates_to_tensorboard(tmp_path):
    from qldm.train import train

    cfg = apply_overrides(make_preset("micro"), ["sample.seeds=0"])
    train(cfg, tmp_path / "run", show_progress=False, export=False)
    tags = _tensorboard(tmp_path / "run")
    assert "samples" in tags["images"]
    assert "loss" in tags["scalars"] and any(t.startswith("gate/") for t in tags["scalars"])  # lambda per block


def test_train_vae_writes_tensorboard_and_a_reconstruction_grid(tmp_path, capsys):
    from PIL import Image

    from qldm.cli import main

    out = tmp_path / "vae-run"
    assert main(["train-vae", "--preset", "micro", "--out", str(out), "--no-progress"]) == 0
    assert "reconstructions:" in capsys.readouterr().out
    grid = Image.open(out / "vae_reconstructions.png")
    assert grid.size[1] > 2 * 32  # inputs above reconstructions
    tags = _tensorboard(out)
    assert "vae/reconstructions" in tags["images"] and "vae_loss" in tags["scalars"]
