"""Inference-time ablations of the quantum branch: does a trained model use Q at all?

Each ablation changes only what every Q-FFN's circuit contributes, on the same trained weights, the same prompts and
the same sampling seeds, so the metrics can be compared image by image (paired):

- ``lambda0``: the gate is set to 0, which removes ``lambda * post(Q(...))`` exactly (only where a lambda exists:
  ``parallel`` Q-FFNs);
- ``mean``: the circuit's output is replaced by its mean over the tokens of each image (keeps the average signal,
  removes everything that varies across positions);
- ``shuffle``: the circuit's outputs are permuted across the tokens of each image (keeps their distribution, breaks
  which token gets which output).

Paired intervals: hair-colour correctness and the per-image high-frequency ratio are differenced image by image
(Student-t); FID, a set statistic, by a paired bootstrap that resamples the same image indices for both sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy import stats

from qldm.qffn import CircuitSlot

__all__ = ["ABLATIONS", "Ablation", "ablate", "has_gate", "paired_t", "paired_bootstrap_fid", "per_image_hf"]

Ablation = Literal["none", "lambda0", "mean", "shuffle"]
ABLATIONS: tuple[str, ...] = ("none", "lambda0", "mean", "shuffle")


def _circuit_slots(model: torch.nn.Module) -> list[CircuitSlot]:
    """Every slot whose core is the circuit (twins have no circuit to ablate)."""
    return [m for m in model.modules() if isinstance(m, CircuitSlot) and m.circuit is not None]


def has_gate(model: torch.nn.Module) -> bool:
    """Whether any circuit slot of ``model`` has a lambda (so ``lambda0`` applies)."""
    return any(getattr(m, "gate", None) is not None for m in _circuit_slots(model))


@contextmanager
def ablate(model: torch.nn.Module, mode: Ablation, *, seed: int = 0) -> Iterator[int]:
    """Ablate the circuit of every circuit slot in ``model`` inside the ``with`` block; yields how many.

    Args:
        model: Any module holding :class:`~qldm.qffn.CircuitSlot` layers (Q-FFNs, quanvolutions): a ``QLDMUNet``, a
            pipeline's ``unet``.
        mode: One of :data:`ABLATIONS`; ``"none"`` changes nothing.
        seed: Seed of the ``shuffle`` permutations (one generator for the whole block, so a run is repeatable).

    Raises:
        ValueError: On an unknown mode, a model without a circuit to ablate, or ``lambda0`` on a model without a
            lambda (``quantum-only`` Q-FFNs, quanvolution).
    """
    if mode not in ABLATIONS:
        raise ValueError(f"unknown ablation {mode!r}; choose one of {list(ABLATIONS)}")
    layers = _circuit_slots(model)
    if not layers and mode != "none":
        raise ValueError("the model has no circuit (no Q-FFN or quanvolution with a circuit): nothing to ablate")
    if mode == "lambda0":
        layers = [m for m in layers if getattr(m, "gate", None) is not None]
        if not layers:
            raise ValueError("ablation 'lambda0' needs a lambda; this model's circuits have none (quantum-only)")
    saved: list[torch.Tensor] = []
    handles = []
    generator = torch.Generator().manual_seed(int(seed))

    def replace(_module: torch.nn.Module, _inputs: Any, q: torch.Tensor) -> torch.Tensor:
        # q: (..., L, n) circuit outputs; the ablation acts within each image (over L)
        if q.dim() < 2:
            return q
        if mode == "mean":
            return q.mean(dim=-2, keepdim=True).expand_as(q)  # (..., L, n)
        flat = q.reshape(-1, q.shape[-2], q.shape[-1])  # (B, L, n)
        perms = torch.stack([torch.randperm(flat.shape[1], generator=generator) for _ in range(flat.shape[0])])
        idx = perms.to(q.device)[:, :, None].expand_as(flat)  # (B, L, n)
        return torch.gather(flat, 1, idx).reshape(q.shape)

    try:
        for layer in layers:
            if mode == "lambda0":
                saved.append(layer.gate.detach().clone())
                with torch.no_grad():
                    layer.gate.zero_()
            elif mode in ("mean", "shuffle"):
                handles.append(layer.quantum.register_forward_hook(replace))
        yield len(layers)
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for layer, gate in zip(layers, saved):
                layer.gate.copy_(gate)


def per_image_hf(images: torch.Tensor, cutoff: float = 0.25) -> np.ndarray:
    """High-frequency energy ratio of each image ``(N, 3, H, W)`` in [-1, 1] -> ``(N,)``."""
    from qldm.eval.spectrum import high_frequency_ratio

    return np.array([high_frequency_ratio(images[i : i + 1], cutoff) for i in range(len(images))])


@dataclass(frozen=True)
class PairedDelta:
    """``mean(ablated - base)`` with its 95% interval and the number of pairs."""

    delta: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return {"delta": self.delta, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


def paired_t(base: np.ndarray, other: np.ndarray) -> PairedDelta:
    """Paired Student-t interval of ``mean(other - base)`` over matched items (NaN items are dropped).

    Raises:
        ValueError: If the arrays differ in length.
    """
    base, other = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    if base.shape != other.shape:
        raise ValueError(f"paired arrays differ in shape: {base.shape} vs {other.shape}")
    d = (other - base)[np.isfinite(other - base)]
    if d.size < 2:
        return PairedDelta(float(d.mean()) if d.size else math.nan, math.nan, math.nan, int(d.size))
    half = float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return PairedDelta(float(d.mean()), float(d.mean()) - half, float(d.mean()) + half, int(d.size))


def paired_bootstrap_fid(
    reference: np.ndarray, base: np.ndarray, other: np.ndarray, *, draws: int = 200, seed: int = 0
) -> PairedDelta:
    """``FID(other) - FID(base)`` against fixed reference features, with a paired bootstrap 95% interval.

    Args:
        reference: Reference features ``(R, D)``.
        base, other: Features ``(N, D)`` of the two image sets, row i of each made from the same prompt and noise.
        draws: Bootstrap resamples of the image indices (the same indices for both sets). Resamples too degenerate
            for the matrix square root are dropped; with fewer than half left the interval is NaN.
        seed: Seed of the resampling.

    Raises:
        ValueError: If the two sets differ in size or have fewer than 2 images.
    """
    from qldm.eval.fid import feature_statistics, frechet_distance

    if base.shape != other.shape or len(base) < 2:
        raise ValueError(f"need two paired feature sets of >= 2 rows, got {base.shape} and {other.shape}")
    mu_r, sig_r = feature_statistics(reference)

    def fid(f: np.ndarray) -> float:
        return frechet_distance(mu_r, sig_r, *feature_statistics(f))

    delta = fid(other) - fid(base)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(draws):
        idx = rng.integers(0, len(base), len(base))
        try:
            boots.append(fid(other[idx]) - fid(base[idx]))
        except ValueError:  # a resample too degenerate for sqrtm (tiny sets): it carries no information
            continue
    if len(boots) < draws // 2:
        return PairedDelta(float(delta), math.nan, math.nan, int(len(base)))
    low, high = np.percentile(boots, [2.5, 97.5])
    return PairedDelta(float(delta), float(low), float(high), int(len(base)))
