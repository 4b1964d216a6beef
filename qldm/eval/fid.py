"""Fréchet distance between feature Gaussians (FID, Heusel et al. 2017), labelled by its feature extractor.

FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). The matrix square root uses ``scipy.linalg.sqrtm`` with the
stability fix of the reference implementations (pytorch-fid, TTUR): when the product is near-singular (few samples
against many features) the result is not finite, so ``eps * I`` is added to both covariances and the root retaken; a
negligible imaginary part from round-off is dropped, a large one is an error. FID is biased upwards at small N (Chong &
Forsyth, CVPR 2020), so values are comparable only at equal N and with the same extractor; every :class:`FIDResult`
carries both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

from qldm.eval.features import FeatureExtractor, HandcraftedFeatures
from qldm.eval.spectrum import as_images

__all__ = [
    "FIDResult",
    "feature_statistics",
    "frechet_distance",
    "compute_fid",
    "gaussian_blur",
    "add_noise",
]


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``(N, D)`` features.

    Raises:
        ValueError: If ``features`` is not 2-D with at least 2 rows, or holds NaN/inf.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or inf")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *, eps: float = 1e-6
) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1, mu2: Means ``(D,)``.
        sigma1, sigma2: Covariances ``(D, D)`` (symmetric positive semi-definite).
        eps: Diagonal offset used when the product of the covariances is too singular for ``sqrtm``.

    Returns:
        The squared distance (>= 0 up to round-off; tiny negatives are clipped to 0).

    Raises:
        ValueError: On mismatched shapes, or if the square root keeps a significant imaginary part.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, float)), np.atleast_2d(np.asarray(sigma2, float))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off leaves a small imaginary part; relative to the trace scale it must be negligible.
        scale = max(1.0, float(np.abs(np.trace(s1)) + np.abs(np.trace(s2))))
        if np.abs(covmean.imag).max() > 1e-3 * scale:
            raise ValueError(f"sqrtm(S1 S2) has an imaginary part of {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


@dataclass(frozen=True)
class FIDResult:
    """One FID value with what it was measured on.

    Attributes:
        value: The Fréchet distance.
        extractor: The feature extractor's name.
        label: How reports name the metric, e.g. ``"FID (offline features: handcrafted-v1)"``.
        n_real: Reference images.
        n_fake: Compared images.
    """

    value: float
    extractor: str
    label: str
    n_real: int
    n_fake: int


def compute_fid(
    real: torch.Tensor | np.ndarray | None,
    fake: torch.Tensor | np.ndarray,
    extractor: FeatureExtractor | None = None,
    *,
    real_features: np.ndarray | None = None,
) -> FIDResult:
    """FID between two image sets.

    Args:
        real: Reference images ``(N, 3, H, W)`` in [-1, 1] (ignored when ``real_features`` is given).
        fake: Compared images ``(M, 3, H', W')`` in [-1, 1].
        extractor: Default :class:`HandcraftedFeatures` (offline).
        real_features: Precomputed features of the reference set, to reuse across many comparisons.

    Raises:
        ValueError: On bad shapes, fewer than 2 images in a set, or neither ``real`` nor ``real_features``.
    """
    extractor = extractor if extractor is not None else HandcraftedFeatures()
    if real is None and real_features is None:
        raise ValueError("compute_fid needs the reference images or their features")
    f_real = real_features if real_features is not None else extractor(real)
    f_fake = extractor(fake)
    value = frechet_distance(*feature_statistics(f_real), *feature_statistics(f_fake))
    return FIDResult(value, extractor.name, f"FID ({extractor.label})", int(len(f_real)), int(len(f_fake)))


def gaussian_blur(images: torch.Tensor | np.ndarray, sigma: float) -> torch.Tensor:
    """Blur each channel with a Gaussian of std ``sigma`` pixels (reflect padding): a degraded copy.

    Returns:
        float32 ``(N, 3, H, W)``.

    Raises:
        ValueError: If ``sigma <= 0`` or the images are malformed.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = torch.from_numpy(as_images(images)).float()
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    pad = min(radius, x.shape[-1] - 1)
    if pad < radius:  # reflect padding needs pad < size; crop the kernel for tiny images
        k = k[radius - pad : radius + pad + 1] / k[radius - pad : radius + pad + 1].sum()
    y = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    return F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)


def add_noise(images: torch.Tensor | np.ndarray, std: float, *, seed: int = 0) -> torch.Tensor:
    """Add seeded i.i.d. Gaussian pixel noise of std ``std`` (in [-1, 1] units) and clip: a degraded copy.

    Raises:
        ValueError: If ``std <= 0`` or the images are malformed.
    """
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    x = torch.from_numpy(as_images(images)).float()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)) * std
    return (x + noise).clamp(-1.0, 1.0)
