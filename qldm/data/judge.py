"""Judging generated faces: hair colour read inside the generator's own hair mask, and its statistics.

The judge needs no learned classifier: the procedural generator knows where it draws hair for each style
(:func:`qldm.data.procedural.hair_mask`), so the hair colour of a sample is the palette colour nearest (in
CIELAB) to the mean colour inside that mask. On clean renders this is exact by construction; the tests check
it stays so under noise and blur, which is what diffusion samples look like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest

from qldm.data.palette import HAIR_PALETTE, nearest_palette_name
from qldm.data.procedural import hair_mask

__all__ = [
    "judge_hair_colour",
    "mean_hair_rgb",
    "wilson_interval",
    "binomial_test_vs_chance",
    "BinomialResult",
]


def mean_hair_rgb(images: torch.Tensor | np.ndarray, styles: Sequence[str | dict[str, Any]]) -> np.ndarray:
    """Mean colour inside each image's hair mask.

    Args:
        images: ``(N, 3, H, W)`` with values in [-1, 1] (values outside are clipped), H == W.
        styles: N hair-style names, or N attribute dicts with ``"hair_style"``.

    Returns:
        ``(N, 3)`` float array of sRGB in [0, 1].

    Raises:
        ValueError: On a shape mismatch, non-square images, or an unknown style.
    """
    x = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, float)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
        raise ValueError(f"expected square images of shape (N, 3, S, S), got {tuple(x.shape)}")
    if len(styles) != x.shape[0]:
        raise ValueError(f"got {x.shape[0]} images but {len(styles)} styles")
    rgb01 = (np.clip(x, -1.0, 1.0) + 1.0) / 2.0  # (N, 3, S, S)
    out = np.empty((x.shape[0], 3))
    for i, style in enumerate(styles):
        mask = hair_mask(style, x.shape[2])  # (S, S) bool
        out[i] = rgb01[i][:, mask].mean(axis=1)
    return out


def judge_hair_colour(images: torch.Tensor | np.ndarray, styles: Sequence[str | dict[str, Any]]) -> list[str]:
    """Hair colour of each image: the ``HAIR_COLORS`` name nearest to the mean colour in the hair mask.

    Args:
        images: ``(N, 3, H, W)`` in [-1, 1], H == W.
        styles: N hair-style names or attribute dicts with ``"hair_style"`` (what the prompt asked for).

    Returns:
        N colour names.

    Raises:
        ValueError: See :func:`mean_hair_rgb`.
    """
    return nearest_palette_name(mean_hair_rgb(images, styles), HAIR_PALETTE)


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it).

    Computed by scipy: ``binomtest(k, n).proportion_ci(method="wilson")``.

    Args:
        k: Successes.
        n: Trials (> 0).
        z: Normal quantile of the interval (1.96 for 95%).

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: If ``n <= 0`` or ``k`` is outside ``[0, n]``.
    """
    from scipy.stats import binomtest, norm

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    ci = binomtest(k, n).proportion_ci(confidence_level=float(2 * norm.cdf(z) - 1), method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class BinomialResult:
    """Outcome of a one-sided exact binomial test of accuracy against chance.

    Attributes:
        k: Correct judgements.
        n: Judged samples.
        p0: Chance rate (e.g. 1 / number of colours).
        accuracy: k / n.
        ci_low: Wilson 95% lower bound of the accuracy.
        ci_high: Wilson 95% upper bound.
        pvalue: P(X >= k) under Binomial(n, p0).
    """

    k: int
    n: int
    p0: float
    accuracy: float
    ci_low: float
    ci_high: float
    pvalue: float


def binomial_test_vs_chance(k: int, n: int, p0: float) -> BinomialResult:
    """Exact one-sided binomial test (scipy ``binomtest``) that an accuracy ``k / n`` exceeds chance ``p0``.

    Args:
        k: Correct judgements.
        n: Judged samples (> 0).
        p0: Chance rate in (0, 1).

    Returns:
        :class:`BinomialResult`.

    Raises:
        ValueError: On ``n <= 0``, ``k`` outside ``[0, n]``, or ``p0`` outside (0, 1).
    """
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"chance rate p0 must be in (0, 1), got {p0}")
    low, high = wilson_interval(k, n)
    test = binomtest(int(k), int(n), p0, alternative="greater")
    return BinomialResult(
        k=int(k), n=int(n), p0=float(p0), accuracy=k / n, ci_low=low, ci_high=high, pvalue=float(test.pvalue)
    )
