"""Accuracy of the pixel hair-colour captioner against hand labels, with a Wilson 95% interval.

``hair_labels.csv`` (project data, next to this file) holds 324 anime-faces-64 images labelled by a person looking
at upscaled contact sheets: ``file_name`` (relative to the dataset root), ``hair_colour`` (a ``HAIR_COLORS`` name;
ambiguous hair got the nearest palette name), and ``split``. The images were drawn from the sorted file list with
``numpy.random.default_rng(20261124).permutation``: the first 216 are ``eval``, the next 108 ``tune``. The
captioner's thresholds were set on ``tune`` only; ``eval`` was scored once afterwards.

``qldm captioner-accuracy [--root DIR] [--split eval|tune|all]`` (or ``python -m qldm.data``) prints the accuracy
and the confusion matrix.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from qldm.data.captioner import HairColorCaptioner
from qldm.data.images import default_anime_faces_path
from qldm.data.judge import wilson_interval
from qldm.data.palette import HAIR_COLORS

__all__ = [
    "HAIR_LABELS_PATH",
    "load_hair_labels",
    "evaluate_captioner",
    "HairEval",
    "format_confusion",
]

HAIR_LABELS_PATH = Path(__file__).with_name("hair_labels.csv")


def load_hair_labels(split: str = "eval", path: Path = HAIR_LABELS_PATH) -> list[tuple[str, str]]:
    """Hand labels as ``(file_name, hair_colour)`` pairs.

    Args:
        split: ``"eval"``, ``"tune"`` or ``"all"``.
        path: The CSV.

    Raises:
        ValueError: On an unknown split or a label outside ``HAIR_COLORS``.
    """
    if split not in ("eval", "tune", "all"):
        raise ValueError(f"split must be 'eval', 'tune' or 'all', got {split!r}")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if split == "all" or r["split"] == split]
    for r in rows:
        if r["hair_colour"] not in HAIR_COLORS:
            raise ValueError(f"{path}: label {r['hair_colour']!r} for {r['file_name']} is not in {HAIR_COLORS}")
    return [(r["file_name"], r["hair_colour"]) for r in rows]


@dataclass(frozen=True)
class HairEval:
    """Captioner accuracy on labelled images.

    Attributes:
        n: Labelled images scored.
        correct: Images whose predicted colour equals the label.
        accuracy: correct / n.
        ci_low: Wilson 95% lower bound.
        ci_high: Wilson 95% upper bound.
        confusion: ``(K, K)`` int array, rows = label, columns = prediction, in ``HAIR_COLORS`` order.
        predictions: ``(file_name, label, prediction)`` per image.
    """

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    confusion: np.ndarray
    predictions: tuple[tuple[str, str, str], ...]


def evaluate_captioner(
    root: Path | None = None,
    *,
    split: str = "eval",
    captioner: HairColorCaptioner | None = None,
) -> HairEval:
    """Score the captioner on the hand-labelled images.

    Args:
        root: The anime-faces-64 folder (default :func:`default_anime_faces_path`).
        split: Which labels (see :func:`load_hair_labels`).
        captioner: Default ``HairColorCaptioner()``.

    Raises:
        ValueError: If the folder or a labelled image is missing.
    """
    root = Path(root) if root is not None else default_anime_faces_path()
    if not root.is_dir():
        raise ValueError(f"anime faces folder {str(root)!r} not found (set QLDM_ANIME_FACES)")
    captioner = captioner or HairColorCaptioner()
    confusion = np.zeros((len(HAIR_COLORS), len(HAIR_COLORS)), dtype=np.int64)
    preds = []
    for name, label in load_hair_labels(split):
        path = root / name
        if not path.is_file():
            raise ValueError(f"labelled image {str(path)!r} is missing")
        with Image.open(path) as im:
            pred = captioner.hair_colour(im.convert("RGB"))
        confusion[HAIR_COLORS.index(label), HAIR_COLORS.index(pred)] += 1
        preds.append((name, label, pred))
    n, correct = len(preds), int(np.trace(confusion))
    low, high = wilson_interval(correct, n)
    return HairEval(n, correct, correct / n, low, high, confusion, tuple(preds))


def format_confusion(result: HairEval) -> str:
    """The accuracy line and the confusion matrix (rows = hand label, columns = captioner) as text."""
    short = [c[:6] for c in HAIR_COLORS]
    lines = [
        f"accuracy {result.correct}/{result.n} = {result.accuracy:.3f}  "
        f"(Wilson 95% CI {result.ci_low:.3f}-{result.ci_high:.3f})",
        "label \\ pred " + " ".join(f"{s:>6}" for s in short) + "  recall",
    ]
    for i, name in enumerate(HAIR_COLORS):
        row = result.confusion[i]
        recall = f"{row[i] / row.sum():.2f}" if row.sum() else "  - "
        lines.append(f"{name:>12} " + " ".join(f"{v:>6d}" for v in row) + f"  {recall}")
    return "\n".join(lines)
