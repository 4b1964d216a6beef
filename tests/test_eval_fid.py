"""Fréchet distance against closed forms, the Inception path's errors, and the offline features'
separation of real faces from blurred or noisy copies (procedural faces unmarked; real ones marked ``data``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from qldm.data import default_anime_faces_path
from qldm.eval import (
    HandcraftedFeatures,
    InceptionFeatures,
    WeightsNotFoundError,
    feature_statistics,
    frechet_distance,
    make_extractor,
)
from qldm.eval.separation import format_separation, load_real_images, separation_table


def random_spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_closed_forms():
    # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2 with variances s^2.
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)
    # Diagonal covariances: sum of per-dimension 1-D distances.
    v1, v2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.2, 0.5])
    expected = 0.25 + float(((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum())
    got = frechet_distance(np.zeros(3), np.diag(v1), np.array([0.5, 0, 0]), np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-9)
    # General SPD: Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2) (the symmetric form).
    s1, s2 = random_spd(6, 0), random_spd(6, 1)
    r1 = linalg.sqrtm(s1).real
    sym = np.trace(linalg.sqrtm(r1 @ s2 @ r1).real)
    assert frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(
        np.trace(s1) + np.trace(s2) - 2 * sym, rel=1e-8
    )
    assert frechet_distance(np.ones(6), s1, np.ones(6), s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_survives_singular_covariances_and_checks_shapes():
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(5, 20)), rng.normal(size=(5, 20)) + 3.0  # N < D: rank-deficient covariances
    value = frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    assert np.isfinite(value) and value > 20 * 9.0 * 0.5  # the mean shift (9 per dimension) dominates
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))


def test_inception_needs_an_existing_local_file(tmp_path):
    missing = tmp_path / "pt_inception.pth"
    with pytest.raises(WeightsNotFoundError, match="pt_inception.pth.*does not exist") as info:
        make_extractor(missing)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    assert "offline features" in str(info.value)


def test_inception_without_torch_fidelity_says_what_to_install(tmp_path):
    try:
        import torch_fidelity  # noqa: F401

        pytest.skip("torch-fidelity is importable here; this checks the message when it is not")
    except ImportError:
        pass
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not used")
    with pytest.raises(ValueError, match="torch-fidelity"):
        InceptionFeatures(weights)


def test_offline_extractor_is_labelled_deterministic_and_has_its_dimension():
    ex = make_extractor(None)
    assert isinstance(ex, HandcraftedFeatures) and ex.label == "offline features: handcrafted-v1"
    x = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f = ex(x)
    assert f.shape == (5, ex.dim) == (5, 111) and f.dtype == np.float64
    assert np.array_equal(f, ex(x)) and np.isfinite(f).all()


def check_separation(rows, *, blur_factor: float, noise_factor: float) -> None:
    by = {r["comparison"]: float(r["fid"]) for r in rows}
    base = by["real A vs real B"]
    assert by["real A vs B blurred (sigma 1 px)"] > blur_factor * base
    assert by["real A vs B + noise (std 0.1)"] > noise_factor * base
    # Stronger degradation moves further away.
    assert by["real A vs B blurred (sigma 2 px)"] > by["real A vs B blurred (sigma 1 px)"]
    assert by["real A vs B + noise (std 0.2)"] > by["real A vs B + noise (std 0.1)"]


def test_offline_fid_separates_real_procedural_faces_from_blurred_and_noisy(capsys):
    # Measured (400 faces, 200 vs 200): A/B 2.3, blur 1 px 133 (59x), noise 0.1 45 (20x).
    images = load_real_images("procedural", 240, image_size=32, seed=3)
    rows = separation_table(images, blur_sigmas=(1.0, 2.0), noise_stds=(0.1, 0.2), seed=0)
    with capsys.disabled():
        print("\n" + format_separation(rows, "FID (offline features: handcrafted-v1), procedural 32 px"))
    check_separation(rows, blur_factor=20.0, noise_factor=5.0)


@pytest.mark.data
@pytest.mark.skipif(not default_anime_faces_path().is_dir(), reason="anime-faces-64 not found")
def test_offline_fid_separates_real_anime_faces_from_blurred_and_noisy(capsys):
    # Measured (1000 faces, 500 vs 500): A/B 0.34, blur 1 px 66 (197x), noise 0.1 2.6 (7.7x).
    images = load_real_images("anime-faces", 600, image_size=64)
    rows = separation_table(images, blur_sigmas=(1.0, 2.0), noise_stds=(0.1, 0.2), seed=0)
    with capsys.disabled():
        print("\n" + format_separation(rows, "FID (offline features: handcrafted-v1), anime-faces 64 px"))
    check_separation(rows, blur_factor=30.0, noise_factor=3.0)


def test_fid_separation_and_captioner_commands(tmp_path, capsys):
    import json

    from qldm.cli import main

    out = tmp_path / "sep.json"
    assert main(["fid-separation", "--source", "procedural", "--n", "16", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["comparison"] == "real A vs real B" and rows[0]["n"] == 8 and len(rows) == 7
    assert "real A vs B blurred" in capsys.readouterr().out
    assert main(["captioner-accuracy", "--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qldm captioner-accuracy: error:") and "not found" in err
