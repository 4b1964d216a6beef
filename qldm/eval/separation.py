"""Does an FID feature extractor see image quality? Real half A against real half B, blurred B and noisy B.

An untrained network's features mean nothing, so the offline extractor must earn its place: FID between two disjoint
halves of the same real set (only sampling noise) must be far below FID against degraded copies.
``qldm fid-separation --source procedural|anime-faces --n 1000 [--json out.json]`` (or
``python -m qldm.eval.separation``) prints the table; ``tests/test_eval_fid.py`` asserts it on both data sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from qldm.eval.features import FeatureExtractor, HandcraftedFeatures
from qldm.eval.fid import add_noise, compute_fid, gaussian_blur
from qldm.eval.spectrum import high_frequency_ratio

__all__ = ["separation_table", "load_real_images", "format_separation"]


def load_real_images(source: str, n: int, *, image_size: int, seed: int = 0) -> torch.Tensor:
    """``n`` real images ``(n, 3, S, S)`` in [-1, 1]: seeded procedural faces or the first ``n`` of a folder.

    Raises:
        ValueError: On an unknown source or a missing folder.
    """
    from qldm.data import ImageFolderDataset, ProceduralFaces, default_anime_faces_path

    if source == "procedural":
        return ProceduralFaces(n, image_size=image_size, seed=seed).images.float() / 127.5 - 1.0
    root = default_anime_faces_path() if source == "anime-faces" else Path(source)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} not found")
    ds = ImageFolderDataset(root, image_size=image_size, limit=n)  # no captioner: only pixels are needed
    return torch.stack([ds[i]["pixel_values"] for i in range(len(ds))])


def separation_table(
    images: torch.Tensor,
    extractor: FeatureExtractor | None = None,
    *,
    blur_sigmas: Sequence[float] = (0.5, 1.0, 2.0),
    noise_stds: Sequence[float] = (0.05, 0.1, 0.2),
    seed: int = 0,
) -> list[dict[str, float | str]]:
    """FID of half A of ``images`` against half B, blurred B and noisy B (halves from a seeded permutation).

    Returns:
        Rows ``{"comparison", "fid", "hf_ratio"}`` (HF ratio of the compared set, for reference).

    Raises:
        ValueError: With fewer than 8 images.
    """
    if len(images) < 8:
        raise ValueError(f"need at least 8 images to split in halves, got {len(images)}")
    extractor = extractor if extractor is not None else HandcraftedFeatures()
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(images)))
    half = len(images) // 2
    a, b = images[perm[:half]], images[perm[half : 2 * half]]
    feats_a = extractor(a)
    sets = [("real A vs real B", b)]
    sets += [(f"real A vs B blurred (sigma {s:g} px)", gaussian_blur(b, s)) for s in blur_sigmas]
    sets += [(f"real A vs B + noise (std {s:g})", add_noise(b, s, seed=seed)) for s in noise_stds]
    rows = []
    for name, other in sets:
        fid = compute_fid(a, other, extractor, real_features=feats_a)
        rows.append({"comparison": name, "fid": fid.value, "hf_ratio": high_frequency_ratio(other), "n": half})
    return rows


def format_separation(rows: list[dict[str, float | str]], label: str) -> str:
    """The table as text, with each FID relative to the real-vs-real one."""
    base = float(rows[0]["fid"])
    lines = [
        f"{label}; {rows[0]['n']} vs {rows[0]['n']} images",
        f"{'comparison':<40} {'FID':>10} {'x A/B':>8} {'HF ratio':>9}",
    ]
    for r in rows:
        ratio = float(r["fid"]) / base if base > 0 else float("inf")
        lines.append(f"{r['comparison']:<40} {float(r['fid']):>10.3f} {ratio:>8.1f} {float(r['hf_ratio']):>9.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    from qldm.cli import main

    raise SystemExit(main(["fid-separation", *sys.argv[1:]]))
