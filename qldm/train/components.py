"""Glue between the run config and the data / model packages: dataset, cached text states, U-Net, pipeline.

Both frozen encoders run once per run: latents come from the VAE (``LatentCache``) and caption states from the
text encoder, so a training step only runs the U-Net.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from qldm.config import DataConfig, RunConfig

__all__ = ["load_dataset", "encode_texts", "cache_latents", "build_unet", "make_pipeline", "gate_values"]


def _holdout_pairs(data: DataConfig) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(c.split("/", 1)) for c in data.holdout)  # type: ignore[misc]


def load_dataset(data: DataConfig):
    """The training set of a run.

    Procedural data honours ``data.holdout`` (those hair colour/style pairs are never drawn); other sources
    reject a non-empty holdout, because their attributes are not controlled.

    Raises:
        ValueError: On an unknown source, a folder without images, or a holdout on non-procedural data.
    """
    from qldm.data import ProceduralFaces, build_dataset

    if data.source == "procedural":
        n = data.limit or 2000
        return ProceduralFaces(n, image_size=data.image_size, seed=data.seed, exclude_combos=_holdout_pairs(data))
    if data.holdout:
        raise ValueError(f"data.holdout only applies to procedural data, not source {data.source!r}")
    ds = build_dataset(
        data.source, image_size=data.image_size, limit=data.limit, seed=data.seed, captions=data.captions
    )
    if len(ds) == 0:
        raise ValueError(f"data source {data.source!r} has no images")
    return ds


def _pad(states: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-chunk ``(hidden (b, L_i, D), mask (b, L_i))`` to one length; padded positions get mask 0."""
    length = max(h.shape[1] for h, _ in states)
    hs, ms = [], []
    for h, m in states:
        extra = length - h.shape[1]
        hs.append(torch.nn.functional.pad(h, (0, 0, 0, extra)))
        ms.append(torch.nn.functional.pad(m, (0, extra)))
    return torch.cat(hs), torch.cat(ms)


@torch.no_grad()
def encode_texts(text_encoder, texts: list[str], *, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode captions once, deduplicated.

    Returns:
        ``hidden (N, L, D)`` and ``mask (N, L)``, aligned with ``texts``.
    """
    unique = sorted(set(texts))
    states = [text_encoder.encode(unique[i : i + chunk]) for i in range(0, len(unique), chunk)]
    hidden, mask = _pad([(h.float(), m) for h, m in states])
    index = (
        torch.tensor([unique.index(t) for t in texts])
        if len(unique) < 64
        else torch.tensor([{u: i for i, u in enumerate(unique)}[t] for t in texts])
    )
    return hidden[index], mask[index]


def dataset_id(data: DataConfig, dataset) -> str:
    """A string that changes whenever the data set's content or order does (the latent cache's key)."""
    own = getattr(dataset, "dataset_id", None)
    if isinstance(own, str):
        return own
    parts = (data.source, data.image_size, data.limit, data.seed, data.holdout, len(dataset))
    return "|".join(map(str, parts))


@torch.no_grad()
def cache_latents(vae, dataset, cfg: RunConfig, cache_dir: str | os.PathLike, *, batch_size: int = 64):
    """Scaled latents ``(N, c, h, w)`` (posterior means) of every image, and the N captions.

    The frozen VAE runs once per data set; ``LatentCache`` stores the result on disk keyed by VAE weights and data.
    """
    from qldm.models import LatentCache

    cached = LatentCache(Path(cache_dir)).load_or_compute(
        vae,
        dataset,
        dataset_id=dataset_id(cfg.data, dataset),
        image_size=cfg.data.image_size,
        batch_size=batch_size,
    )
    texts = getattr(dataset, "texts", None) or [dataset[i]["text"] for i in range(len(dataset))]
    return cached.scaled(cfg.model.latent_scale).float(), texts


def build_unet(cfg: RunConfig):
    """The denoiser for ``cfg.model``, with gradient checkpointing if the run asks for it."""
    from qldm.models import build_unet as build

    unet = build(cfg.model)
    if cfg.train.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet


def make_pipeline(cfg: RunConfig, *, vae, text_encoder, unet, scheduler: str | None = None):
    """A ``QLDMPipeline`` from in-memory components (sampling scheduler from ``cfg.sample`` unless given)."""
    from qldm.models import QLDMPipeline, make_sample_scheduler

    sched = make_sample_scheduler(scheduler or cfg.sample.scheduler, cfg.model)
    pipe = QLDMPipeline(vae=vae, text_encoder=text_encoder, unet=unet, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def gate_values(unet: torch.nn.Module) -> dict[str, float]:
    """Every circuit slot's gate lambda, keyed ``gate/<module path>`` (quantum-only slots have none)."""
    from qldm.qffn import CircuitSlot

    return {
        f"gate/{name}": float(m.gate.detach())
        for name, m in unet.named_modules()
        if isinstance(m, CircuitSlot) and getattr(m, "gate", None) is not None
    }


def grad_norms(unet: torch.nn.Module) -> dict[str, float]:
    """L2 norms of the current gradients by group, and the share of the squared norm reaching the circuit weights.

    Groups: ``circuit`` (the circuit slots' core weights: the circuit's, or a twin's), ``quantum`` (core, pre and
    post), ``gate`` (the lambdas), ``classical`` (the rest). ``grad_share/circuit`` = |g_circuit|² / |g|², the
    fraction of the update's squared size that the circuit gets; clipping rescales every group alike, so it does not
    change the share.
    """
    from qldm.models.hybridize import parameter_groups
    from qldm.qffn import CircuitSlot

    groups = parameter_groups(unet)
    circuit = [p for m in unet.modules() if isinstance(m, CircuitSlot) for p in m.quantum.parameters()]

    def sq(params) -> float:
        return sum(float(p.grad.detach().float().pow(2).sum()) for p in params if p.grad is not None)

    parts = {name: sq(params) for name, params in groups.items()}
    parts["circuit"] = sq(circuit)
    total = sum(v for k, v in parts.items() if k != "circuit")
    out = {f"grad/{k}": v**0.5 for k, v in parts.items()}
    if circuit:
        out["grad_share/circuit"] = parts["circuit"] / total if total > 0 else 0.0
    return out
