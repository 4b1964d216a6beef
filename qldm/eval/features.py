"""Feature extractors for FID: Inception-v3 from a local weights file, or an offline hand-crafted one.

FID (Heusel et al., NeurIPS 2017) compares Gaussians fitted to image features. Its usual features are the 2048-d pool3
activations of the TF Inception-v3; torch-fidelity ships them as a PyTorch state dict
(``pt_inception-2015-12-05-6726825d.pth``) but downloads it from the net, which this project cannot do. So
:class:`InceptionFeatures` takes a LOCAL copy of that file.

Without it, :class:`HandcraftedFeatures` is used. An untrained network's features mean nothing, so the fallback is built
from image statistics whose meaning is known, all computed at 64x64:

- layout: the mean colour of a 4x4 grid of cells (48 d): where face, hair and background sit;
- colour: 8-bin histograms of R, G and B, square-rooted (Hellinger embedding) (24 d);
- texture: at 4 pyramid scales (64, 32, 16, 8 px), the log energy of gray gradients in 4 orientations and of the
  per-channel Laplacian (28 d): edges and fine texture, which blur removes and noise inflates;
- spectrum: log power of the gray image in 8 radial bands up to Nyquist (8 d);
- noise: log median |Laplacian| per channel at 64 px (3 d): pixel noise in flat regions.

That is 111 dimensions. They are not Inception features: numbers are comparable only with other reports labelled with
the same extractor name, never with published FIDs. ``tests/test_eval_fid.py`` shows that the fallback separates two
halves of the real faces from blurred or noisy copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from qldm.eval.spectrum import LUMA, as_images

__all__ = [
    "FeatureExtractor",
    "HandcraftedFeatures",
    "InceptionFeatures",
    "WeightsNotFoundError",
    "make_extractor",
]

_SIZE = 64  # analysis resolution of the hand-crafted features
_EPS = 1e-6  # floor inside the logs: a flat image has zero energy


class WeightsNotFoundError(FileNotFoundError, ValueError):
    """A given weights file does not exist (a ``ValueError`` too, so the CLI reports it in one line)."""


class FeatureExtractor(Protocol):
    """Maps ``(N, 3, H, W)`` images in [-1, 1] to ``(N, D)`` float64 features; ``label`` names it."""

    name: str

    @property
    def label(self) -> str: ...

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray: ...


def _gaussian_down(x: torch.Tensor) -> torch.Tensor:
    """One pyramid level: binomial [1 4 6 4 1]/16 blur, then stride 2 (Burt & Adelson 1983)."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype) / 16.0
    k = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, 5, 5)  # (C, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, stride=2, groups=x.shape[1])


def _oriented_energy(gray: torch.Tensor) -> torch.Tensor:
    """Log mean squared differences along 0, 45, 90 and 135 degrees: ``(N, 1, h, w) -> (N, 4)``."""
    dx = gray[..., :, 1:] - gray[..., :, :-1]
    dy = gray[..., 1:, :] - gray[..., :-1, :]
    d1 = gray[..., 1:, 1:] - gray[..., :-1, :-1]
    d2 = gray[..., 1:, :-1] - gray[..., :-1, 1:]
    return torch.stack([torch.log(d.pow(2).mean(dim=(1, 2, 3)) + _EPS) for d in (dx, d1, dy, d2)], 1)


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian per channel with reflect padding: ``(N, C, h, w) -> (N, C, h, w)``."""
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), lap.expand(x.shape[1], 1, 3, 3), groups=x.shape[1])


def _laplacian_energy(x: torch.Tensor) -> torch.Tensor:
    """Log mean squared Laplacian per channel: ``(N, C, h, w) -> (N, C)``."""
    return torch.log(_laplacian(x).pow(2).mean(dim=(2, 3)) + _EPS)


def _flat_region_noise(x: torch.Tensor) -> torch.Tensor:
    """Log median |Laplacian| per channel: ``(N, C, h, w) -> (N, C)``.

    Most pixels of a clean face lie in flat regions, where the Laplacian is ~0, so its median measures pixel noise
    (Donoho's median-absolute-deviation noise estimate uses the same idea) while the mean energy above is dominated by
    edges and barely moves under mild noise.
    """
    return torch.log(_laplacian(x).abs().flatten(2).median(dim=2).values + 1e-3)


def _band_power(gray: torch.Tensor, n_bands: int) -> torch.Tensor:
    """Log mean power of the mean-free gray image in radial bands up to Nyquist: ``(N, n_bands)``."""
    g = gray[:, 0] - gray[:, 0].mean(dim=(1, 2), keepdim=True)  # (N, S, S)
    s = g.shape[-1]
    power = torch.fft.fft2(g).abs().pow(2) / (s * s)  # (N, S, S)
    f = torch.fft.fftfreq(s, dtype=g.dtype)
    r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)  # (S, S)
    edges = torch.linspace(0.0, 0.5, n_bands + 1, dtype=g.dtype)
    edges[-1] = 0.5 + 1e-9
    bands = [power[:, (r >= lo) & (r < hi) & (r > 0)].mean(dim=1) for lo, hi in zip(edges[:-1], edges[1:])]
    return torch.log(torch.stack(bands, 1) + _EPS)


@dataclass(frozen=True)
class HandcraftedFeatures:
    """The offline FID feature extractor (see the module docstring for the 111 features).

    Args:
        batch_size: Images processed at once (bounds memory).
    """

    batch_size: int = 256
    name: str = "handcrafted-v1"  # bump the version whenever the features change

    @property
    def label(self) -> str:
        return f"offline features: {self.name}"

    @property
    def dim(self) -> int:
        return 48 + 24 + 4 * (4 + 3) + 8 + 3

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (_SIZE, _SIZE):
            x = F.interpolate(x, size=(_SIZE, _SIZE), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(-1.0, 1.0)  # (N, 3, 64, 64)
        layout = F.adaptive_avg_pool2d(x, 4).flatten(1)  # (N, 48)
        # Soft 8-bin histograms (each pixel split linearly between its two nearest bin centres) keep the features smooth
        # in the pixel values.
        pos = ((x + 1.0) * 3.5).flatten(2)  # (N, 3, P) in [0, 7]
        lo = pos.floor().clamp(max=6.0)
        frac = pos - lo
        hist = torch.zeros(*pos.shape[:2], 8, dtype=x.dtype)
        hist.scatter_add_(2, lo.long(), 1.0 - frac).scatter_add_(2, lo.long() + 1, frac)  # (N, 3, 8)
        hist = (hist / pos.shape[-1]).sqrt().flatten(1)  # (N, 24)
        texture, level = [], x
        for _ in range(4):  # 64, 32, 16, 8 px
            gray = torch.einsum("nchw,c->nhw", level, torch.as_tensor(LUMA, dtype=x.dtype))[:, None]
            texture += [_oriented_energy(gray), _laplacian_energy(level)]  # (N, 4), (N, 3)
            level = _gaussian_down(level)
        gray = torch.einsum("nchw,c->nhw", x, torch.as_tensor(LUMA, dtype=x.dtype))[:, None]
        spectrum = _band_power(gray, 8)  # (N, 8)
        noise = _flat_region_noise(x)  # (N, 3)
        return torch.cat([layout, hist, *texture, spectrum, noise], 1)  # (N, 111)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Features ``(N, 111)`` float64 of images ``(N, 3, H, W)`` in [-1, 1].

        Raises:
            ValueError: On a bad shape or non-finite values.
        """
        # float32 is ample for these statistics and several times faster than float64 on CPU.
        x = torch.from_numpy(as_images(images)).float()  # (N, 3, H, W)
        feats = [self._batch(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return torch.cat(feats).double().numpy()  # (N, 111)


class InceptionFeatures:
    """Inception-v3 pool3 features (2048 d) via torch-fidelity, from a local weights file.

    Args:
        weights_path: A local copy of torch-fidelity's ``pt_inception-2015-12-05-6726825d.pth``.
        device: Torch device for the network.
        batch_size: Images per forward pass.

    Raises:
        WeightsNotFoundError: If ``weights_path`` is not a file (the message says where to get it).
        ValueError: If torch-fidelity cannot be imported.
    """

    def __init__(self, weights_path: str | Path, *, device: str = "cpu", batch_size: int = 64) -> None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"Inception weights file {str(path)!r} does not exist; pass a local copy of torch-fidelity's "
                "pt_inception-2015-12-05-6726825d.pth (from github.com/toshas/torch-fidelity releases), "
                "or omit --inception to use the offline features"
            )
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as err:
            raise ValueError(
                f"Inception FID needs torch-fidelity and its torchvision dependency ({err}); "
                "`pip install torch-fidelity`, or omit --inception to use the offline features"
            ) from None
        self.name = f"inception-v3-pool3 ({path.name})"
        self.weights_path = path
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.model = (
            FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
            .to(self.device)
            .eval()
        )

    @property
    def label(self) -> str:
        return f"Inception features: {self.name}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Pool3 features ``(N, 2048)`` of images in [-1, 1], fed as uint8 like torch-fidelity does."""
        x = torch.from_numpy(as_images(images))
        x = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)  # (N, 3, H, W) uint8
        feats = [
            self.model(x[i : i + self.batch_size].to(self.device))[0].double().cpu()
            for i in range(0, len(x), self.batch_size)
        ]
        return torch.cat(feats).numpy()


def make_extractor(inception: str | Path | None = None, *, device: str = "cpu") -> FeatureExtractor:
    """:class:`InceptionFeatures` when a weights path is given, else :class:`HandcraftedFeatures`.

    Raises:
        WeightsNotFoundError: If the given weights file does not exist.
        ValueError: If torch-fidelity is missing.
    """
    if inception:
        return InceptionFeatures(inception, device=device)
    return HandcraftedFeatures()
