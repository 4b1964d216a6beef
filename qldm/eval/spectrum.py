"""Radial power spectra and the high-frequency energy ratio of image sets.

The original design claims its quantum layer helps high-frequency texture. Generative models are known to leave their
mark in the upper part of the spectrum (Durall et al., CVPR 2020, "Watch your up-convolution"; Dzanic et al., NeurIPS
2020), so the azimuthally averaged power spectrum of generated images against real ones, and the share of energy above a
cutoff, measure that claim directly.

Conventions: frequencies are in cycles per pixel (Nyquist = 0.5). Each image channel has its mean removed before the
FFT, so the DC term is zero and the total power is the pixel variance (Parseval); brightness differences therefore do
not mask texture differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

__all__ = ["radial_power_spectrum", "high_frequency_ratio", "plot_spectra", "as_images", "LUMA"]

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma weights for the grayscale spectrum
_MODES = ("gray", "per-channel")


def as_images(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Validate and convert an image batch to a float64 array.

    Args:
        images: ``(N, 3, H, W)`` in [-1, 1] (a tensor or an array).

    Returns:
        ``(N, 3, H, W)`` float64 array.

    Raises:
        ValueError: If the shape is not ``(N, 3, H, W)`` with N >= 1 and H, W >= 4, or values are not finite.
    """
    x = images.detach().cpu().double().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, float)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[0] < 1 or min(x.shape[2:]) < 4:
        raise ValueError(f"expected images of shape (N, 3, H, W) with N >= 1 and H, W >= 4, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    return x


def _frequency_radius(h: int, w: int) -> np.ndarray:
    """Radius sqrt(fy^2 + fx^2) in cycles/pixel of each bin of a centred (fftshift-ed) ``(h, w)`` spectrum."""
    fy = np.fft.fftshift(np.fft.fftfreq(h))  # (h,)
    fx = np.fft.fftshift(np.fft.fftfreq(w))  # (w,)
    return np.hypot(fy[:, None], fx[None, :])  # (h, w)


def _power(images: np.ndarray, mode: str) -> np.ndarray:
    """Centred power spectra ``(N, C, H, W)``, C = 1 (gray) or 3, normalised so sum / (H W) = variance."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    x = np.einsum("nchw,c->nhw", images, LUMA)[:, None] if mode == "gray" else images  # (N, C, H, W)
    x = x - x.mean(axis=(2, 3), keepdims=True)  # remove DC: spectra compare texture, not brightness
    f = np.fft.fftshift(np.fft.fft2(x), axes=(2, 3))  # (N, C, H, W) complex
    h, w = x.shape[2:]
    return np.abs(f) ** 2 / (h * w)  # (N, C, H, W)


def radial_power_spectrum(
    images: torch.Tensor | np.ndarray, *, mode: str = "gray", n_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthally averaged power spectrum, averaged over the images.

    Args:
        images: ``(N, 3, H, W)`` in [-1, 1].
        mode: ``"gray"`` (BT.601 luma) or ``"per-channel"`` (R, G, B separately).
        n_bins: Radial bins up to Nyquist (default ``min(H, W) // 2``: one per integer frequency). Bin k (1..n_bins) is
            centred on ``k * 0.5 / n_bins`` cycles/pixel and holds the FFT bins whose radius rounds to it; the DC term
            (zero after mean removal) and the corners beyond the last bin are left out of the curve.

    Returns:
        ``(freqs (n_bins,), power)``: bin centres in cycles/pixel and the mean power per bin, ``(n_bins,)``
        for gray or ``(3, n_bins)`` per channel (NaN for a bin no FFT frequency falls in).

    Raises:
        ValueError: On a bad shape, an unknown mode, or ``n_bins < 1``.
    """
    x = as_images(images)
    h, w = x.shape[2:]
    n_bins = min(h, w) // 2 if n_bins is None else int(n_bins)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    power = _power(x, mode).mean(axis=0)  # (C, H, W), mean over images
    width = 0.5 / n_bins
    k = np.rint(_frequency_radius(h, w) / width).astype(int)  # (H, W): nearest bin centre, 0 = DC
    inside = (k >= 1) & (k <= n_bins)
    idx = k[inside] - 1
    counts = np.bincount(idx, minlength=n_bins)  # (n_bins,)
    sums = np.stack([np.bincount(idx, weights=p[inside], minlength=n_bins) for p in power])  # (C, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        radial = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)  # (C, n_bins)
    freqs = width * np.arange(1, n_bins + 1)  # (n_bins,)
    return freqs, (radial[0] if mode == "gray" else radial)


def high_frequency_ratio(images: torch.Tensor | np.ndarray, cutoff: float = 0.25, *, mode: str = "gray") -> float:
    """Share of spectral energy at radial frequency above ``cutoff * Nyquist``.

    The energy is summed over all FFT bins of all images (corners beyond Nyquist count as high frequency),
    after removing each image's mean, so the ratio is (high-frequency energy) / (variance) of the set.

    Args:
        images: ``(N, 3, H, W)`` in [-1, 1].
        cutoff: Fraction of Nyquist in (0, 1].
        mode: ``"gray"`` or ``"per-channel"`` (channels pooled).

    Returns:
        The ratio in [0, 1] (0 for a set of constant images).

    Raises:
        ValueError: On a bad shape, an unknown mode, or a cutoff outside (0, 1].
    """
    if not 0.0 < cutoff <= 1.0:
        raise ValueError(f"cutoff must be in (0, 1] (a fraction of Nyquist), got {cutoff}")
    x = as_images(images)
    power = _power(x, mode).sum(axis=(0, 1))  # (H, W)
    total = float(power.sum())
    if total <= 0.0:
        return 0.0
    r = _frequency_radius(*x.shape[2:])
    return float(power[r > cutoff * 0.5].sum() / total)


def plot_spectra(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    title: str = "Radial power spectrum",
    cutoff: float | None = 0.25,
) -> Path:
    """Plot log-power against frequency, one line per image set, and save a PNG.

    Args:
        curves: ``label -> (freqs, power)`` or ``label -> (freqs, power, half_width)``; the optional half width (e.g. a
            95% CI over seeds) is drawn as a band.
        path: Output PNG.
        title: Figure title.
        cutoff: Marks ``cutoff * Nyquist`` (the high-frequency ratio's boundary); None for no mark.

    Returns:
        The path written.

    Raises:
        ValueError: If ``curves`` is empty.
    """
    if not curves:
        raise ValueError("plot_spectra needs at least one curve")
    from matplotlib.figure import Figure  # a file, not a window: no pyplot state, no backend chosen

    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for label, curve in curves.items():
        freqs, power = np.asarray(curve[0]), np.asarray(curve[1])
        line = ax.semilogy(freqs, power, label=label, lw=1.6)[0]
        if len(curve) == 3:
            half = np.asarray(curve[2])
            low = np.clip(power - half, power * 1e-2, None)  # a log axis cannot show <= 0
            ax.fill_between(freqs, low, power + half, color=line.get_color(), alpha=0.2, lw=0)
    if cutoff is not None:
        ax.axvline(cutoff * 0.5, color="grey", ls=":", lw=1, label=f"HF cutoff ({cutoff:g} Nyquist)")
    ax.set_xlabel("radial frequency (cycles / pixel; Nyquist = 0.5)")
    ax.set_ylabel("mean power (log)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
