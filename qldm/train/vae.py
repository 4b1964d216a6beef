"""Stage 1: train a small ``AutoencoderKL`` on the data set, then measure the latent scale on it.

The latent scale is *measured* (1 / std of the latents, as Rombach et al. 2022 did for SD's 0.18215) and stored in the
run config, never hard-coded, so that stage 2 sees unit-variance latents whatever VAE it uses.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from qldm.config import RunConfig
from qldm.models import build_vae, measure_latent_scale

__all__ = ["train_vae", "load_or_train_vae", "random_crops", "check_found_vae", "reconstruction_grid"]


def _pixels(dataset) -> torch.Tensor:
    """Stack all images of a (small, in-memory) dataset: ``(N, 3, H, W)`` in [-1, 1]."""
    return torch.stack([dataset[i]["pixel_values"] for i in range(len(dataset))])


def _check_crop(cfg: RunConfig) -> int:
    """The VAE training crop side (0 = whole images). Raises ValueError if the VAE cannot be trained on it."""
    crop, size, factor = cfg.train.vae_crop, cfg.data.image_size, cfg.model.vae_scale_factor
    if crop == 0:
        return 0
    if not 0 < crop <= size or crop % factor:
        raise ValueError(
            f"train.vae_crop={crop} must be 0 (whole images) or a multiple of the VAE's downsampling {factor} "
            f"no larger than data.image_size={size}"
        )
    return crop


def random_crops(x: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """One random ``side x side`` window per image: ``(B, C, H, W) -> (B, C, side, side)``."""
    b, _, h, w = x.shape
    top = torch.randint(0, h - side + 1, (b,), generator=generator).tolist()
    left = torch.randint(0, w - side + 1, (b,), generator=generator).tolist()
    return torch.stack([img[:, i : i + side, j : j + side] for img, i, j in zip(x, top, left)])


def train_vae(cfg: RunConfig, dataset, *, show_progress: bool = True, log=None):
    """Train the config's VAE on ``dataset`` for ``cfg.train.vae_epochs`` epochs.

    Loss: L1 + MSE reconstruction, plus L1 at 1/4 resolution (a low-pass term: flat colour regions such as hair are
    otherwise learned last, and the demo's hair-colour check depends on them), plus ``vae_kl_weight`` times the KL to
    N(0, 1). The decoder sees the posterior mean: with LDM's tiny KL weight (~1e-6, Rombach et al. 2022) the posterior
    collapses towards its mean anyway, and early sampling noise (std ~1) only slows a short run.

    With ``train.vae_crop`` set, every step sees one random window of that side per image instead of the whole
    image. The autoencoder is convolutional (its one attention layer works on any grid), so it is used on whole
    images afterwards; a step then costs about ``(crop / image_size) ** 2`` of a whole-image step.

    Args:
        cfg: Run config (model.vae selects the architecture; train.vae_* the optimisation).
        dataset: Items with ``pixel_values`` ``(3, H, W)`` in [-1, 1].
        show_progress: Show a tqdm bar.
        log: Optional callable receiving ``{"vae_epoch", "vae_loss"}`` records.

    Returns:
        ``(vae, latent_scale)``: the trained ``AutoencoderKL`` in eval mode and the measured scale.

    Raises:
        ValueError: If ``train.vae_crop`` does not fit the image size and the VAE's downsampling.
    """
    t = cfg.train
    crop = _check_crop(cfg)
    torch.manual_seed(t.seed)
    vae = build_vae(cfg.model)
    vae.train()
    pixels = _pixels(dataset)  # (N, 3, H, W)
    n = pixels.shape[0]
    steps_per_epoch = max(1, n // t.vae_batch_size)
    total = steps_per_epoch * t.vae_epochs
    opt = torch.optim.AdamW(vae.parameters(), lr=t.vae_lr, weight_decay=0.0)
    warm = max(1, min(20, total // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    gen = torch.Generator().manual_seed(t.seed)
    bar = tqdm(total=total, desc="vae", disable=not show_progress, leave=False)
    for epoch in range(t.vae_epochs):
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        for b in range(steps_per_epoch):
            x = pixels[perm[b * t.vae_batch_size : (b + 1) * t.vae_batch_size]]  # (B, 3, H, W)
            if crop:
                x = random_crops(x, crop, gen)  # (B, 3, crop, crop)
            post = vae.encode(x).latent_dist
            z = post.mean  # (B, C, h, w)
            rec = vae.decode(z).sample  # (B, 3, H, W)
            kl = post.kl().mean() / z[0].numel()
            low = (F.avg_pool2d(rec, 4) - F.avg_pool2d(x, 4)).abs().mean()  # (B, 3, H/4, W/4) colours
            loss = (rec - x).abs().mean() + ((rec - x) ** 2).mean() + low + t.vae_kl_weight * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step()
            sched.step()
            running += loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if log is not None:
            log({"vae_epoch": epoch + 1, "vae_loss": running / steps_per_epoch})
    bar.close()
    vae.eval()
    with torch.no_grad():
        scale = float(measure_latent_scale(vae, pixels[: min(n, 512)]))
    vae.register_to_config(scaling_factor=scale)  # the pipeline decodes with the VAE's own scaling_factor
    return vae, scale


def check_found_vae(cfg: RunConfig, vae_dir: Path) -> None:
    """Refuse a ``vae/`` already in the run folder (a killed run's, or copied there) that the config does not describe.

    A trained ``tiny`` VAE must match the config's image and latent channels, block widths and layers; a pretrained
    one (``train.vae_pretrained`` or ``model.vae``) its level count and latent channels.

    Raises:
        ValueError: Naming the folder and the first mismatching setting.
    """
    m = cfg.model
    try:
        found = json.loads((vae_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        msg = f"{vae_dir / 'config.json'} cannot be read ({err}); remove {vae_dir} or use another --out"
        raise ValueError(msg) from None
    expected: dict[str, object] = {"latent_channels": m.latent_channels}
    if cfg.train.vae_pretrained or m.vae != "tiny":
        expected["levels"] = len(m.vae_block_channels)
        found = {**found, "levels": len(found.get("block_out_channels") or [])}
    else:
        expected.update(
            in_channels=m.image_channels,
            out_channels=m.image_channels,
            block_out_channels=list(m.vae_block_channels),
            layers_per_block=m.vae_layers_per_block,
        )
    for key, want in expected.items():
        have = found.get(key)
        if (list(have) if isinstance(have, (list, tuple)) else have) != want:
            raise ValueError(
                f"{vae_dir} holds a VAE with {key}={have!r} but the config asks for {want!r} (a stale stage 1 from "
                "another config?); remove that folder or choose another --out"
            )


@torch.no_grad()
def reconstruction_grid(vae, dataset, path: str | os.PathLike, *, n: int = 8) -> Path:
    """Save the first ``n`` images (top row) above their VAE reconstructions (bottom row) as a PNG."""
    from qldm.train.progress import save_grid

    x = torch.stack([dataset[i]["pixel_values"] for i in range(min(n, len(dataset)))])  # (n, 3, H, W) in [-1, 1]
    rec = vae.decode(vae.encode(x).latent_dist.mean).sample  # (n, 3, H, W)
    both = torch.cat([x, rec]).clamp(-1, 1).add(1).div(2).permute(0, 2, 3, 1)  # (2n, H, W, 3) in [0, 1]
    return save_grid(both.float().numpy(), path, nrow=x.shape[0])


def load_or_train_vae(
    cfg: RunConfig, dataset, run_dir: str | os.PathLike, *, show_progress: bool = True, log=None
) -> tuple[object, RunConfig]:
    """Stage 1 of a run: reuse ``run_dir/vae``, else load ``train.vae_pretrained`` or a frozen pretrained ``model.vae``
    (``model.vae_finetune=True`` trains it instead), else train one.

    The trained VAE is saved with ``save_pretrained`` into a temporary folder renamed to ``run_dir/vae`` (atomic), and
    the measured scale is written into the returned config's ``model.latent_scale``.

    Returns:
        ``(vae, cfg)`` with the config's ``latent_scale`` set.

    Raises:
        ValueError: If ``run_dir/vae`` exists but does not match the config (:func:`check_found_vae`).
    """
    from diffusers import AutoencoderKL

    vae_dir = Path(run_dir) / "vae"
    pixels_for_scale = None
    if (vae_dir / "config.json").is_file():
        check_found_vae(cfg, vae_dir)
        vae = AutoencoderKL.from_pretrained(vae_dir)
    elif cfg.train.vae_pretrained:
        vae = AutoencoderKL.from_pretrained(cfg.train.vae_pretrained)
    elif cfg.model.vae != "tiny" and not cfg.model.vae_finetune:  # a pretrained model.vae stays frozen
        vae = build_vae(cfg.model)
    else:
        vae, scale = train_vae(cfg, dataset, show_progress=show_progress, log=log)
        tmp = vae_dir.with_name(".tmp-vae")
        vae.save_pretrained(tmp)
        (tmp / "latent_scale.txt").write_text(f"{scale!r}\n")
        os.replace(tmp, vae_dir)
    vae.eval().requires_grad_(False)
    scale_file = vae_dir / "latent_scale.txt"
    if not scale_file.is_file() and cfg.train.vae_pretrained:
        scale_file = Path(cfg.train.vae_pretrained) / "latent_scale.txt"  # another run's stage 1: its own scale
    if scale_file.is_file():
        scale = float(scale_file.read_text())
    else:  # pretrained VAE: measure on this data set, once
        pixels_for_scale = (
            _pixels(dataset) if len(dataset) <= 512 else torch.stack([dataset[i]["pixel_values"] for i in range(512)])
        )
        with torch.no_grad():
            scale = float(measure_latent_scale(vae, pixels_for_scale))
    vae.register_to_config(scaling_factor=scale)
    model = dataclasses.replace(cfg.model, latent_scale=scale)
    return vae, dataclasses.replace(cfg, model=model)
