"""Radial power spectrum and high-frequency ratio on signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qldm.data import ProceduralFaces
from qldm.eval import gaussian_blur, high_frequency_ratio, plot_spectra, radial_power_spectrum
from qldm.eval.spectrum import LUMA


def sinusoid(kx: int, ky: int, size: int = 64, n: int = 2) -> torch.Tensor:
    """A plane wave with kx, ky cycles across the image: radial frequency hypot(kx, ky) / size."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    wave = 0.8 * torch.cos(2 * torch.pi * (kx * x + ky * y) / size)  # (S, S)
    return wave.expand(n, 3, size, size).clone()


@pytest.mark.parametrize(("kx", "ky"), [(8, 0), (0, 5), (6, 8), (20, 3)])
def test_sinusoid_peaks_at_its_radius(kx, ky):
    freqs, power = radial_power_spectrum(sinusoid(kx, ky))
    radius = np.hypot(kx, ky) / 64
    width = freqs[1] - freqs[0]
    assert freqs[0] == pytest.approx(1 / 64) and width == pytest.approx(1 / 64)  # one bin per integer frequency
    assert abs(freqs[np.argmax(power)] - radius) <= width / 2  # the peak bin holds the wave's radius
    # All the energy sits in that bin: the rest is round-off.
    assert np.sort(power)[-2] < 1e-9 * power.max()  # float32 input: round-off ~1e-12


def test_sinusoid_hf_ratio_is_zero_below_and_one_above_the_cutoff():
    assert high_frequency_ratio(sinusoid(4, 0), cutoff=0.25) < 1e-9  # 4/64 = 0.0625 < 0.125
    assert high_frequency_ratio(sinusoid(24, 0), cutoff=0.25) > 1 - 1e-9  # 0.375 > 0.125


def test_white_noise_is_flat_at_its_variance():
    std = 0.3
    noise = torch.randn(64, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * std
    freqs, power = radial_power_spectrum(noise)
    # Parseval: the flat level is the gray variance std^2 * sum(luma^2).
    level = std**2 * float((LUMA**2).sum())
    assert np.allclose(power, level, rtol=0.1)
    assert power.std() / power.mean() < 0.05
    # A flat spectrum puts the area share of the unit square above the cutoff into high frequencies.
    assert high_frequency_ratio(noise, 0.25) == pytest.approx(1 - np.pi * 0.125**2, abs=0.01)
    _, per_channel = radial_power_spectrum(noise, mode="per-channel")
    assert per_channel.shape == (3, len(freqs))
    assert np.allclose(per_channel, std**2, rtol=0.1)


def test_blur_lowers_and_noise_raises_hf_ratio_of_faces():
    faces = ProceduralFaces(32, image_size=32, seed=0).images.float() / 127.5 - 1
    base = high_frequency_ratio(faces)
    assert high_frequency_ratio(gaussian_blur(faces, 1.0)) < 0.5 * base
    noisy = (faces + 0.2 * torch.randn(faces.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    assert high_frequency_ratio(noisy) > base + 0.03
    freqs, clean_power = radial_power_spectrum(faces)
    _, blur_power = radial_power_spectrum(gaussian_blur(faces, 1.0))
    assert (blur_power[len(freqs) // 2 :] < 0.2 * clean_power[len(freqs) // 2 :]).all()


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        radial_power_spectrum(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="cutoff"):
        high_frequency_ratio(torch.zeros(2, 3, 8, 8), cutoff=1.5)
    with pytest.raises(ValueError, match="mode"):
        radial_power_spectrum(torch.zeros(2, 3, 8, 8), mode="hsv")
    with pytest.raises(ValueError, match="NaN"):
        high_frequency_ratio(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="at least one"):
        plot_spectra({}, tmp_path / "x.png")
    assert high_frequency_ratio(torch.zeros(2, 3, 8, 8)) == 0.0


def test_plot_spectra_writes_a_png(tmp_path):
    curves = {"a": radial_power_spectrum(sinusoid(3, 4)), "b": (*radial_power_spectrum(sinusoid(9, 0)), 0.1)}
    curves["b"] = (curves["b"][0], curves["b"][1] + 1e-6, np.full_like(curves["b"][1], 1e-7))
    path = plot_spectra(curves, tmp_path / "spec.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
