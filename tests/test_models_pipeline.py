"""VAE (scale, cache), text encoder, and the diffusers pipeline (sampling, CFG embedding, save/load)."""

from __future__ import annotations

import pytest
import torch
from conftest import micro_model

from qldm.models import (
    LatentCache,
    QLDMPipeline,
    TextEncoder,
    build_pipeline,
    build_text_encoder,
    build_vae,
    decode_latents,
    drop_captions,
    encode_images,
    make_sample_scheduler,
    measure_latent_scale,
)

PROMPTS = ["blue hair", "red hair, short"]


tiny = micro_model  # 16 px, VAE x2 (8x8x4 latents), 16-channel text tokens, 2 data qubits


@pytest.fixture(scope="module")
def pipe() -> QLDMPipeline:
    torch.manual_seed(0)
    p = build_pipeline(tiny())
    p.set_progress_bar_config(disable=True)
    return p


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # (N, 3, H, W)


# ------------------------------------------------------------------------------------------------------ VAE
def test_vae_shapes_and_measured_scale_gives_unit_variance():
    torch.manual_seed(0)
    vae = build_vae(tiny(latent_scale=0.5))
    assert vae.config.scaling_factor == 0.5
    x = images()
    with torch.no_grad():
        scale = measure_latent_scale(vae, x, batch_size=4)
        z = encode_images(vae, x, scale)
        assert z.shape == (6, 4, 8, 8)
        assert z.std(unbiased=False).item() == pytest.approx(1.0, rel=1e-4)
        assert decode_latents(vae, z, scale).shape == x.shape
    with pytest.raises(ValueError, match="expected images"):
        encode_images(vae, x[:, :1], scale)


def test_latent_cache_reloads_and_keys_on_weights(tmp_path):
    torch.manual_seed(0)
    vae = build_vae(tiny())
    data = [(img, f"caption {i}") for i, img in enumerate(images(5))]
    cache = LatentCache(tmp_path)
    first = cache.load_or_compute(vae, data, dataset_id="toy-5", image_size=16, batch_size=2)
    with torch.no_grad():
        direct = encode_images(vae, torch.stack([d[0] for d in data]), 0.7)
    torch.testing.assert_close(first.scaled(0.7), direct)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1

    def boom(*a, **k):
        raise AssertionError("a cache hit must not encode")

    real_encode, vae.encode = vae.encode, boom
    again = cache.load_or_compute(vae, data, dataset_id="toy-5", image_size=16)
    assert again.key == first.key and torch.equal(again.mean, first.mean)
    vae.encode = real_encode
    other = cache.load_or_compute(vae, data, dataset_id="toy-5-shuffled", image_size=16)
    with torch.no_grad():
        vae.decoder.conv_out.bias.add_(1.0)  # any weight change invalidates the cache
    changed_key = cache.key(vae, dataset_id="toy-5", image_size=16)
    assert len({first.key, other.key, changed_key}) == 3
    with pytest.raises(ValueError, match="expected 32x32"):
        cache.load_or_compute(vae, data, dataset_id="new", image_size=32)


# ----------------------------------------------------------------------------------------------------- text
def test_text_encoder_masks_padding_and_is_frozen_by_default(tmp_path):
    text = build_text_encoder(tiny())
    hidden, mask = text.encode(PROMPTS)
    assert hidden.shape == (2, 12, 16) and mask.dtype == torch.long
    assert mask[0].tolist() == [1] * 10 + [0] * 2  # 9 bytes + EOS, then padding
    assert not hidden.requires_grad and not any(p.requires_grad for p in text.parameters())
    text.train()
    assert not text.model.training  # a frozen encoder never uses dropout
    again = build_text_encoder(tiny())  # the tiny encoder is a fixed function of its config
    assert torch.equal(again.encode(PROMPTS)[0], hidden)
    trainable = build_text_encoder(tiny(train_text_encoder=True))
    assert trainable.encode(PROMPTS)[0].requires_grad

    text.model.save_pretrained(tmp_path / "t5")
    text.tokenizer.save_pretrained(tmp_path / "t5")
    loaded = build_text_encoder(tiny(text_encoder=str(tmp_path / "t5")))
    assert torch.equal(loaded.encode(PROMPTS)[0], hidden)
    with pytest.raises(ValueError, match="text_dim=16"):
        build_text_encoder(tiny(text_encoder=str(tmp_path / "t5"), text_dim=32, text_heads=2))


# ------------------------------------------------------------------------------------------------- pipeline
def test_pipeline_generates_images_of_the_configured_size(pipe):
    steps = []
    out = pipe(
        PROMPTS, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt",
        on_step_begin=lambda i, t: steps.append((i, t)), num_images_per_prompt=2,
    )  # fmt: skip
    assert out.images.shape == (4, 3, 16, 16)
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert [i for i, _ in steps] == [0, 1, 2] and steps[0][1] == 999  # trailing spacing starts at T - 1
    pil = pipe("blue hair", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert len(pil) == 1 and pil[0].size == (16, 16)
    for name in ("dpm++", "ddpm"):
        pipe.scheduler = make_sample_scheduler(name, tiny())
        assert pipe(PROMPTS, num_inference_steps=2, output_type="np").images.shape == (2, 16, 16, 3)
    pipe.scheduler = make_sample_scheduler("ddim", tiny())


def test_sampling_is_deterministic_and_restores_training_mode(pipe):
    pipe.unet.train()
    a = pipe(PROMPTS, num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="pt")
    b = pipe(PROMPTS, num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="pt")
    assert torch.equal(a.images, b.images) and pipe.unet.training
    pipe.unet.eval()


def test_cfg_uses_the_training_empty_embedding(pipe):
    """The unconditional half of every guided U-Net call is exactly what caption dropout trains on."""
    seen = []
    handle = pipe.unet.register_forward_pre_hook(lambda mod, args: seen.append((args[2].clone(), args[3].clone())))
    pipe(PROMPTS, num_inference_steps=2, guidance_scale=3.0, output_type="latent")
    handle.remove()
    hidden, mask = pipe.text_encoder.encode(PROMPTS)
    dropped_h, dropped_m = drop_captions(hidden, mask, *pipe.text_encoder.empty(2), p=1.0)
    assert len(seen) == 2
    for h, m in seen:
        assert torch.equal(h[:2], dropped_h) and torch.equal(m[:2], dropped_m)
        assert torch.equal(h[2:], hidden)
    assert not torch.equal(dropped_h, hidden)


def test_pipeline_save_load_round_trip(pipe, tmp_path):
    kw = {"num_inference_steps": 3, "output_type": "pt"}
    ref = pipe(PROMPTS, generator=torch.Generator().manual_seed(2), **kw).images
    pipe.save_pretrained(tmp_path)
    back = QLDMPipeline.from_pretrained(tmp_path)
    back.set_progress_bar_config(disable=True)
    assert isinstance(back.text_encoder, TextEncoder)
    assert back.unet.circuit_metadata() == pipe.unet.circuit_metadata()
    assert back.vae.config.scaling_factor == pipe.vae.config.scaling_factor
    assert torch.equal(back(PROMPTS, generator=torch.Generator().manual_seed(2), **kw).images, ref)


_FRESH_LOAD = """
import sys, torch
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
out = pipe(["blue hair", "red hair, short"], num_inference_steps=3, output_type="pt",
           generator=torch.Generator().manual_seed(2)).images
torch.save({"cls": f"{type(pipe).__module__}.{type(pipe).__name__}", "images": out}, sys.argv[2])
"""


def test_generic_diffusion_pipeline_loads_a_saved_pipeline_in_a_fresh_process(pipe, tmp_path):
    """A diffusers user needs no QLDM class name: ``DiffusionPipeline.from_pretrained`` finds it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    kw = {"num_inference_steps": 3, "output_type": "pt"}
    ref = pipe(PROMPTS, generator=torch.Generator().manual_seed(2), **kw).images
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["_class_name"] == ["qldm_pipeline", "QLDMPipeline"]
    assert index["unet"] == ["qldm.models.unet", "QLDMUNet"]
    root = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),  # diffusers copies the folder's module file there
    }
    run = subprocess.run(
        [sys.executable, "-c", _FRESH_LOAD, str(tmp_path / "pipe"), str(tmp_path / "out.pt")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt")
    assert got["cls"] == "qldm.models.pipeline.QLDMPipeline"
    assert torch.equal(got["images"], ref)


def test_pipeline_loader_refuses_a_changed_module_file(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    (tmp_path / "qldm_pipeline.py").write_text("import os\nfrom qldm.models.pipeline import QLDMPipeline\n")
    with pytest.raises(ValueError, match="trust_remote_code"):
        QLDMPipeline.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code"):  # diffusers' own guard
        from diffusers import DiffusionPipeline

        DiffusionPipeline.from_pretrained(tmp_path)


def test_pipeline_call_accepts_the_usual_diffusers_keywords(pipe):
    gen = torch.Generator().manual_seed(3)
    base = pipe(PROMPTS, num_inference_steps=2, generator=gen, output_type="pt").images
    # an empty negative prompt is exactly the training's unconditional embedding
    same = pipe(
        PROMPTS, negative_prompt="", num_inference_steps=2, generator=torch.Generator().manual_seed(3),
        output_type="pt",
    ).images  # fmt: skip
    assert torch.equal(same, base)
    neg = pipe(
        PROMPTS, negative_prompt=["green hair", "blonde hair"], num_inference_steps=2,
        generator=torch.Generator().manual_seed(3), output_type="pt",
    ).images  # fmt: skip
    assert neg.shape == base.shape and not torch.equal(neg, base)
    with pytest.raises(ValueError, match="negative prompts"):
        pipe(PROMPTS, negative_prompt=["a", "b", "c"], num_inference_steps=1)

    # height / width: the trained size by default, other multiples of the downsampling, else an error naming it
    assert pipe.trained_size == 16
    square = pipe("blue hair", height=16, width=16, num_inference_steps=1, output_type="pt").images
    tall = pipe("blue hair", height=32, width=16, num_inference_steps=1, output_type="np").images
    assert square.shape == (1, 3, 16, 16) and tall.shape == (1, 32, 16, 3)
    with pytest.raises(ValueError, match="trained at 16x16"):
        pipe("blue hair", height=18, num_inference_steps=1)  # micro: VAE x2, U-Net x2, so multiples of 4

    # one generator per image reproduces the images of single generators
    gens = [torch.Generator().manual_seed(s) for s in (5, 6)]
    pair = pipe("blue hair", num_images_per_prompt=2, generator=gens, num_inference_steps=2, output_type="pt").images
    one = pipe("blue hair", generator=torch.Generator().manual_seed(6), num_inference_steps=2, output_type="pt").images
    assert pair.shape == (2, 3, 16, 16) and torch.allclose(pair[1], one[0], atol=1e-6)
    with pytest.raises(ValueError, match="3 generators for 2 images"):
        pipe(PROMPTS, generator=[torch.Generator()] * 3, num_inference_steps=1)

    # callback_on_step_end sees and may replace the latents; return_dict=False gives a tuple
    seen = []

    def on_end(p, i, t, tensors):
        seen.append((i, int(t), tuple(tensors["latents"].shape)))
        return {"latents": torch.zeros_like(tensors["latents"])} if i == 1 else {}

    (lat,) = pipe(PROMPTS, num_inference_steps=2, output_type="latent", callback_on_step_end=on_end, return_dict=False)
    assert [s[0] for s in seen] == [0, 1] and seen[0][2] == (2, 4, 8, 8) and not lat.any()
    with pytest.raises(ValueError, match="not among"):
        pipe(PROMPTS, num_inference_steps=1, callback_on_step_end=on_end, callback_on_step_end_tensor_inputs=["x"])

    def stop(p, i, t, tensors):
        p._interrupt = True  # diffusers' convention for ending a run early
        return {}

    counted = []
    pipe(PROMPTS, num_inference_steps=3, output_type="latent", callback_on_step_end=stop,
         on_step_begin=lambda i, t: counted.append(i))  # fmt: skip
    assert counted == [0] and pipe.num_timesteps == 3
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    given = pipe(PROMPTS, latents=latents, num_inference_steps=2, output_type="pt").images
    assert torch.equal(given, base)  # seed 3's noise passed in as latents
