"""The VAE: diffusers ``AutoencoderKL``, the measured latent scale, and an on-disk latent cache for stage 2.

Stage 1 trains (or loads) the autoencoder; stage 2 trains the denoiser on ``scale * E(x)``. Because the VAE is
frozen in stage 2, the data set's latents are computed once and reloaded from a safetensors file keyed by a
hash of the VAE weights and config, the data set's identity and the image size, so a changed VAE or data set
never reuses stale ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file

from qldm.models.config import ModelConfig

__all__ = [
    "build_vae",
    "measure_latent_scale",
    "encode_images",
    "decode_latents",
    "LatentCache",
    "CachedLatents",
    "norm_groups",
    "vae_fingerprint",
]


def norm_groups(channels: Sequence[int], cap: int = 32) -> int:
    """GroupNorm group count that divides every width (and their sums, as in U-Net skip concatenations)."""
    return min(cap, math.gcd(*channels))


def build_vae(cfg: ModelConfig) -> AutoencoderKL:
    """Build the ``tiny`` autoencoder from config, or load a pretrained one from a local path or hub id.

    A folder that holds a ``vae/`` subfolder (a whole Stable Diffusion checkpoint) is read from that subfolder.
    ``cfg.latent_scale`` is written into the VAE config's ``scaling_factor``, so a saved pipeline carries it.

    Raises:
        ValueError: If a pretrained VAE's level count or latent channels disagree with ``cfg``.
    """
    if cfg.vae == "tiny":
        n = len(cfg.vae_block_channels)
        return AutoencoderKL(
            in_channels=cfg.image_channels,
            out_channels=cfg.image_channels,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(cfg.vae_block_channels),
            layers_per_block=cfg.vae_layers_per_block,
            latent_channels=cfg.latent_channels,
            norm_num_groups=norm_groups(cfg.vae_block_channels),
            sample_size=cfg.image_size,
            scaling_factor=cfg.latent_scale,
        )
    sub = "vae" if os.path.isdir(os.path.join(cfg.vae, "vae")) else None
    vae = AutoencoderKL.from_pretrained(cfg.vae, subfolder=sub)
    levels, lat = len(vae.config.block_out_channels), vae.config.latent_channels
    if levels != len(cfg.vae_block_channels) or lat != cfg.latent_channels:
        raise ValueError(
            f"pretrained VAE {cfg.vae!r} has {levels} levels and {lat} latent channels, but the config says "
            f"{len(cfg.vae_block_channels)} levels (vae_block_channels) and "
            f"latent_channels={cfg.latent_channels}; "
            f"set vae_block_channels={tuple(vae.config.block_out_channels)} latent_channels={lat}"
        )
    vae.register_to_config(scaling_factor=cfg.latent_scale)
    return vae


def _batches(images: torch.Tensor | Iterable[torch.Tensor], batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        yield from images.split(batch_size)
    else:
        yield from images


@torch.no_grad()
def measure_latent_scale(
    vae: AutoencoderKL, images: torch.Tensor | Iterable[torch.Tensor], *, batch_size: int = 32
) -> float:
    """``1 / std`` of the unscaled latents (posterior means) over ``images``: scaled latents have unit variance.

    This is how Stable Diffusion's 0.18215 was derived (Rombach et al. 2022, sec. 3.3 / appendix), here measured on our
    own data and VAE and stored in ``ModelConfig.latent_scale`` rather than hard-coded.

    Args:
        images: ``(N, C, H, W)`` in [-1, 1], or an iterable of such batches.

    Raises:
        ValueError: If there are no images or the latents are constant.
    """
    total, sq, count = 0.0, 0.0, 0
    for batch in _batches(images, batch_size):
        z = encode_images(vae, batch, 1.0).double()  # (b, c, h, w)
        total, sq, count = total + z.sum().item(), sq + z.pow(2).sum().item(), count + z.numel()
    if count == 0:
        raise ValueError("measure_latent_scale needs at least one image")
    var = sq / count - (total / count) ** 2
    if not var > 0:
        raise ValueError("latents have zero variance; cannot derive a scale")
    return 1.0 / math.sqrt(var)


def encode_images(
    vae: AutoencoderKL,
    images: torch.Tensor,
    scale: float,
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pixels ``(B, C, H, W)`` in [-1, 1] -> scaled latents ``(B, c, H/f, W/f)``.

    Args:
        sample: Draw from the posterior instead of taking its mean (the mean is deterministic and the default).

    Raises:
        ValueError: If ``images`` is not 4-D with the VAE's channel count.
    """
    if images.dim() != 4 or images.shape[1] != vae.config.in_channels:
        raise ValueError(f"expected images (B, {vae.config.in_channels}, H, W), got {tuple(images.shape)}")
    x = images.to(device=vae.device, dtype=vae.dtype)
    dist = vae.encode(x).latent_dist
    z = dist.sample(generator) if sample else dist.mode()  # (B, c, h, w)
    return z * scale


def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, scale: float) -> torch.Tensor:
    """Scaled latents ``(B, c, h, w)`` -> images ``(B, C, H, W)`` clamped to [-1, 1]."""
    x = vae.decode(latents.to(device=vae.device, dtype=vae.dtype) / scale).sample  # (B, C, H, W)
    return x.clamp(-1, 1)


# ------------------------------------------------------------------------------------------ latent cache
@dataclass(frozen=True)
class CachedLatents:
    """Posterior statistics of a data set, in data-set order, *unscaled* (the scale is applied on use).

    Attributes:
        mean, std: ``(N, c, h, w)`` each.
        key: The cache key they were stored under.
    """

    mean: torch.Tensor
    std: torch.Tensor
    key: str

    def __len__(self) -> int:
        return self.mean.shape[0]

    def scaled(
        self,
        scale: float,
        index: torch.Tensor | slice | None = None,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Scaled latents ``(n, c, h, w)`` of the items ``index`` (all by default).

        Args:
            sample: Draw from the posterior instead of returning its mean.
        """
        idx = slice(None) if index is None else index
        mean, std = self.mean[idx], self.std[idx]
        if sample:
            mean = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean * scale


def _image_of(item: Any) -> torch.Tensor:
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, dict):
        for key in ("pixel_values", "image", "images"):
            if key in item:
                return item[key]
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor):
        return item[0]
    raise ValueError(
        f"cannot find an image tensor in a data set item of type {type(item).__name__}; expected a tensor, a "
        "(tensor, ...) tuple or a dict with 'pixel_values' or 'image'"
    )


def vae_fingerprint(vae: AutoencoderKL) -> str:
    """SHA-256 over the VAE's architecture config and every weight's bytes.

    Bookkeeping keys (``_name_or_path``, ``_diffusers_version``, ... that ``from_pretrained`` adds) and
    ``scaling_factor`` (cached latents are unscaled) are left out, so the VAE a run trained and the same VAE
    reloaded from disk on resume, or by a second run, share one key.
    """
    arch = {k: v for k, v in dict(vae.config).items() if not k.startswith("_") and k != "scaling_factor"}
    h = hashlib.sha256(json.dumps(arch, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


class LatentCache:
    """A folder of ``latents-<key>.safetensors`` files, one per (VAE, data set, image size).

    Args:
        directory: Where the files live (created on first write).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def key(self, vae: AutoencoderKL, *, dataset_id: str, image_size: int) -> str:
        """Hex key of (VAE weights and config, ``dataset_id``, ``image_size``)."""
        blob = json.dumps({"vae": vae_fingerprint(vae), "dataset": dataset_id, "size": int(image_size)})
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.directory / f"latents-{key}.safetensors"

    @torch.no_grad()
    def load_or_compute(
        self,
        vae: AutoencoderKL,
        dataset: Sequence[Any],
        *,
        dataset_id: str,
        image_size: int,
        batch_size: int = 32,
    ) -> CachedLatents:
        """Return the cached latents of ``dataset`` (item ``i`` -> row ``i``), computing and storing them if
        absent.

        Args:
            dataset: Indexable items: an image tensor ``(C, H, W)`` in [-1, 1], a tuple starting with one, or
                a dict with ``pixel_values``/``image``.
            dataset_id: A string that changes whenever the data set's content or order changes (e.g. its path,
                file count and modification time, or the built-in generator's seed and size).

        Raises:
            ValueError: On an empty data set, items without an image, or images not ``image_size`` square.
        """
        if len(dataset) == 0:
            raise ValueError("cannot cache the latents of an empty data set")
        key = self.key(vae, dataset_id=dataset_id, image_size=image_size)
        path = self.path(key)
        if path.exists():
            cached = self._read(path, key, shape=_latent_shape(vae, len(dataset), image_size))
            if cached is not None:
                return cached
        means, stds = [], []
        for start in range(0, len(dataset), batch_size):
            imgs = [_image_of(dataset[i]) for i in range(start, min(start + batch_size, len(dataset)))]
            batch = torch.stack(imgs)  # (b, C, H, W)
            if batch.shape[-2:] != (image_size, image_size):
                raise ValueError(f"data set images are {tuple(batch.shape[-2:])}, expected {image_size}x{image_size}")
            dist = vae.encode(batch.to(device=vae.device, dtype=vae.dtype)).latent_dist
            means.append(dist.mean.float().cpu().contiguous())
            stds.append(dist.std.float().cpu().contiguous())
        mean, std = torch.cat(means), torch.cat(stds)  # (N, c, h, w) each
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two runs never write one file
        save_file({"mean": mean, "std": std}, str(tmp), metadata={"dataset_id": dataset_id, "size": str(image_size)})
        os.replace(tmp, path)  # atomic: a killed run never leaves a truncated cache file behind
        return CachedLatents(mean, std, key)

    @staticmethod
    def _read(path: Path, key: str, *, shape: tuple[int, ...]) -> CachedLatents | None:
        """The entry at ``path`` if it loads whole with ``mean`` and ``std`` of ``shape``; else None, after a
        one-line warning naming the file (the caller recomputes and overwrites it)."""
        try:
            data = load_file(str(path))
            got = {k: tuple(v.shape) for k, v in data.items()}
            if got != {"mean": shape, "std": shape}:
                raise ValueError(f"holds {got}, expected mean and std of {shape}")
        except Exception as err:  # noqa: BLE001 - safetensors, OS and shape errors all mean: recompute
            reason = " ".join(str(err).split()) or type(err).__name__
            logging.getLogger(__name__).warning("damaged latent cache entry %s (%s): recomputing it", path, reason)
            return None
        return CachedLatents(data["mean"], data["std"], key)


def _latent_shape(vae: AutoencoderKL, n: int, image_size: int) -> tuple[int, int, int, int]:
    """``(n, c, h, w)``: the posterior statistics' shape of ``n`` images of ``image_size`` through ``vae``."""
    side = image_size // 2 ** (len(vae.config.block_out_channels) - 1)
    return (n, int(vae.config.latent_channels), side, side)
