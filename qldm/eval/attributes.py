"""Prompted-attribute accuracy of generated images: does "blue hair" in the prompt give blue hair?

Two judges, one per kind of training data:

- ``"procedural"``: models trained on the built-in faces. The generator knows where it draws hair for each
  style, so :func:`qldm.data.judge_hair_colour` reads the colour inside that mask (exact on clean renders).
  The prompt must name the hair style, which picks the mask.
- ``"captioner"``: models trained on real faces. The pixel :class:`qldm.data.HairColorCaptioner` names the colour (its
  own accuracy on 216 hand-labelled real faces is 0.644, Wilson 95% CI 0.578-0.704: a ceiling on what this judge can
  certify).

Chance is the accuracy of the best prompt-ignoring model: always drawing the most-prompted colour, so
``p0 = max_c share of prompts asking for c`` (1/K for prompts balanced over K colours). The one-sided exact binomial
test asks whether the accuracy beats it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qldm.data import (
    HAIR_COLORS,
    HairColorCaptioner,
    binomial_test_vs_chance,
    judge_hair_colour,
    parse_prompt,
    wilson_interval,
)
from qldm.eval.spectrum import as_images

__all__ = ["AttributeResult", "hair_colour_accuracy", "JUDGES", "judge_for_source"]

JUDGES: tuple[str, ...] = ("procedural", "captioner")


def judge_for_source(source: str) -> str:
    """The judge for a run's data source: ``"procedural"`` for the built-in faces, else ``"captioner"``."""
    return "procedural" if str(source) == "procedural" else "captioner"


@dataclass(frozen=True)
class AttributeResult:
    """Hair-colour accuracy of generated images against their prompts.

    Attributes:
        attribute: ``"hair_color"``.
        judge: ``"procedural"`` or ``"captioner"``.
        n: Images judged (prompts that name a hair colour, and for the procedural judge a style).
        correct: Images whose judged colour equals the prompted one.
        accuracy: correct / n.
        ci_low, ci_high: Wilson 95% interval.
        p0: Chance rate (see the module docstring).
        pvalue: One-sided exact binomial p-value of accuracy > p0.
        skipped: Images whose prompt named no usable attribute.
        labels: Colour names indexing ``confusion``.
        confusion: ``(K, K)`` counts, rows = prompted colour, columns = judged colour.
        predictions: The judged colour of every image (None where skipped).
    """

    attribute: str
    judge: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    p0: float
    pvalue: float
    skipped: int
    labels: tuple[str, ...]
    confusion: np.ndarray
    predictions: tuple[str | None, ...]

    def to_dict(self) -> dict:
        """JSON-ready dict (the confusion matrix as nested lists)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("confusion", "predictions")}
        out["labels"] = list(self.labels)
        out["confusion"] = self.confusion.tolist()
        return out


def _to_uint8_hwc(images: np.ndarray) -> np.ndarray:
    """``(N, 3, H, W)`` in [-1, 1] -> ``(N, H, W, 3)`` uint8."""
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)


def hair_colour_accuracy(
    images: torch.Tensor | np.ndarray, prompts: Sequence[str], *, judge: str = "procedural"
) -> AttributeResult:
    """Judge each image's hair colour and compare it with its prompt.

    Args:
        images: ``(N, 3, H, W)`` in [-1, 1]; square for the procedural judge.
        prompts: N prompts, one per image (e.g. ``"anime face, blue hair, long hair"``).
        judge: ``"procedural"`` (needs the style in the prompt) or ``"captioner"``.

    Returns:
        :class:`AttributeResult`.

    Raises:
        ValueError: On an unknown judge, a length mismatch, or no judgeable prompt at all.
    """
    if judge not in JUDGES:
        raise ValueError(f"judge must be one of {JUDGES}, got {judge!r}")
    x = as_images(images)
    if len(prompts) != len(x):
        raise ValueError(f"got {len(x)} images but {len(prompts)} prompts")
    wanted: list[dict[str, str]] = [parse_prompt(p) for p in prompts]
    need = ("hair_color", "hair_style") if judge == "procedural" else ("hair_color",)
    keep = [i for i, a in enumerate(wanted) if all(k in a for k in need)]
    if not keep:
        raise ValueError(f"no prompt names {' and '.join(need)}; cannot judge hair colour (first: {prompts[0]!r})")
    if judge == "procedural":
        judged = judge_hair_colour(x[keep], [wanted[i]["hair_style"] for i in keep])
    else:
        captioner = HairColorCaptioner()
        judged = [captioner.hair_colour(img) for img in _to_uint8_hwc(x[keep])]
    labels = HAIR_COLORS
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for i, got in zip(keep, judged):
        confusion[labels.index(wanted[i]["hair_color"]), labels.index(got)] += 1
    n, correct = len(keep), int(np.trace(confusion))
    counts = Counter(wanted[i]["hair_color"] for i in keep)
    p0 = max(counts.values()) / n
    low, high = wilson_interval(correct, n)
    # A single prompted colour makes chance 1: nothing to test against; report p = 1 rather than fail.
    pvalue = binomial_test_vs_chance(correct, n, p0).pvalue if p0 < 1.0 else 1.0
    predictions: list[str | None] = [None] * len(x)
    for i, got in zip(keep, judged):
        predictions[i] = got
    return AttributeResult(
        attribute="hair_color",
        judge=judge,
        n=n,
        correct=correct,
        accuracy=correct / n,
        ci_low=low,
        ci_high=high,
        p0=p0,
        pvalue=pvalue,
        skipped=len(x) - n,
        labels=labels,
        confusion=confusion,
        predictions=tuple(predictions),
    )
