"""Metrics of generated image sets and the side-by-side quantum-vs-classical report.

Each (run, sampling seed) gives one :class:`SetMetrics`: FID against a reference set of real images, the high-frequency
energy ratio and radial spectrum, and the prompted hair-colour accuracy. Runs are grouped by data set and label
(:func:`qldm.eval.sources.run_label`); a group's value is the mean over all its (run, seed) sets with a Student-t 95%
interval, and hair-colour counts are also pooled for a Wilson interval and an exact binomial test against chance. A
"real (held-out)" row, a second real set against the same reference, gives the floor FID can reach at this N and the
real HF ratio.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from qldm.data import binomial_test_vs_chance, parse_prompt, wilson_interval
from qldm.eval.attributes import AttributeResult, hair_colour_accuracy
from qldm.eval.features import FeatureExtractor
from qldm.eval.fid import compute_fid
from qldm.eval.sources import CONTROL_LABELS
from qldm.eval.spectrum import high_frequency_ratio, plot_spectra, radial_power_spectrum

__all__ = ["SetMetrics", "measure_set", "mean_ci", "aggregate", "write_report", "REAL_LABEL"]

REAL_LABEL = "real (held-out)"


@dataclass(frozen=True)
class SetMetrics:
    """Metrics of one image set (one run, one sampling seed).

    Attributes:
        run: Run name (folder name).
        label: Comparison group.
        dataset: Data set key, e.g. ``"procedural@32"``.
        seed: Sampling seed.
        n: Images.
        fid: FID against the data set's reference images.
        fid_label: The metric's name with its extractor, e.g. ``"FID (offline features: handcrafted-v1)"``.
        hf_ratio: Energy share above the cutoff (see :func:`high_frequency_ratio`).
        freqs, spectrum: Radial power spectrum (gray).
        attributes: Hair-colour accuracy, or None when the prompts name no colour.
        holdout: The same on the prompts whose colour/style pair the run never saw in training (None if the
            run held none out).
    """

    run: str
    label: str
    dataset: str
    seed: int
    n: int
    fid: float
    fid_label: str
    hf_ratio: float
    freqs: np.ndarray
    spectrum: np.ndarray
    attributes: AttributeResult | None
    holdout: AttributeResult | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("run", "label", "dataset", "seed", "n", "fid", "fid_label", "hf_ratio")}
        d["spectrum"] = {"freqs": self.freqs.tolist(), "power": self.spectrum.tolist()}
        d["attributes"] = self.attributes.to_dict() if self.attributes else None
        d["holdout"] = self.holdout.to_dict() if self.holdout else None
        return d


def measure_set(
    images: torch.Tensor,
    prompts: list[str] | None,
    *,
    run: str,
    label: str,
    dataset: str,
    seed: int,
    extractor: FeatureExtractor,
    reference_features: np.ndarray,
    judge: str | None,
    hf_cutoff: float = 0.25,
    holdout: tuple[str, ...] = (),
) -> SetMetrics:
    """Measure one set of images ``(N, 3, H, W)`` in [-1, 1] against the reference features.

    ``judge`` None (or prompts None) skips the attribute accuracy. ``holdout`` (``"colour/style"`` pairs a run
    never saw in training) adds the accuracy on just those prompts: compositional generalisation.
    """
    fid = compute_fid(None, images, extractor, real_features=reference_features)
    freqs, power = radial_power_spectrum(images)
    attrs = hair_colour_accuracy(images, prompts, judge=judge) if judge and prompts else None
    held = None
    if attrs is not None and holdout:
        wanted = {tuple(h.split("/", 1)) for h in holdout}
        pairs = [parse_prompt(p) for p in prompts]  # type: ignore[union-attr]
        idx = [i for i, a in enumerate(pairs) if (a.get("hair_color"), a.get("hair_style")) in wanted]
        if idx:
            held = hair_colour_accuracy(images[idx], [prompts[i] for i in idx], judge=judge)  # type: ignore[index]
    return SetMetrics(
        run, label, dataset, int(seed), len(images), fid.value, fid.label,
        high_frequency_ratio(images, hf_cutoff), freqs, power, attrs, held,
    )  # fmt: skip


def mean_ci(values: list[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its Student-t 95% interval (nan for fewer than 2 values)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    if v.size < 2:
        return float(v.mean()), math.nan
    return float(v.mean()), float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def welch_diff(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> dict[str, float] | None:
    """Welch's unequal-variance comparison of two samples: ``mean(a) - mean(b)`` with its 95% interval and p-value.

    Args:
        a: First sample, shape ``(n_a,)``.
        b: Second sample, shape ``(n_b,)``.

    Returns:
        ``{"delta", "ci_low", "ci_high", "p"}`` (Welch-Satterthwaite degrees of freedom), or None if either sample has
        fewer than 2 values.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return None
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    return {
        "delta": float(a.mean() - b.mean()),
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p": float(res.pvalue),
    }


def _order(label: str) -> tuple[int, str]:
    if label == REAL_LABEL:
        return (-1, label)
    return (CONTROL_LABELS.index(label), label) if label in CONTROL_LABELS else (len(CONTROL_LABELS), label)


def aggregate(sets: list[SetMetrics]) -> list[dict[str, Any]]:
    """One row per (data set, label): mean ± 95% CI over its (run, seed) sets, pooled attribute counts, and
    Welch t-test p-values of FID and HF ratio against the ``quantum`` group of the same data set."""
    groups: dict[tuple[str, str], list[SetMetrics]] = defaultdict(list)
    for s in sets:
        groups[(s.dataset, s.label)].append(s)
    rows = []
    for (dataset, label), members in sorted(groups.items(), key=lambda kv: (kv[0][0], _order(kv[0][1]))):
        row: dict[str, Any] = {
            "dataset": dataset,
            "label": label,
            "runs": sorted({m.run for m in members}),
            "sets": len(members),
            "n_per_set": sorted({m.n for m in members}),
            "fid_label": members[0].fid_label,
            "fid_values": [m.fid for m in members],
            "hf_values": [m.hf_ratio for m in members],
        }
        row["fid_mean"], row["fid_ci"] = mean_ci(row["fid_values"])
        row["hf_mean"], row["hf_ci"] = mean_ci(row["hf_values"])
        judged = [m.attributes for m in members if m.attributes is not None]
        if judged:
            k, n = sum(a.correct for a in judged), sum(a.n for a in judged)
            p0 = float(np.mean([a.p0 for a in judged]))
            row["acc_values"] = [a.accuracy for a in judged]
            row["acc_mean"], row["acc_ci"] = mean_ci(row["acc_values"])
            row["acc_pooled"], row["acc_pooled_k"], row["acc_pooled_n"] = k / n, k, n
            row["acc_wilson"] = wilson_interval(k, n)
            row["acc_p0"] = p0
            row["acc_pvalue"] = binomial_test_vs_chance(k, n, p0).pvalue if p0 < 1 else 1.0
            row["acc_judge"] = judged[0].judge
            row["confusion"] = np.sum([a.confusion for a in judged], axis=0).tolist()
            row["confusion_labels"] = list(judged[0].labels)
        held = [m.holdout for m in members if m.holdout is not None]
        if held:
            k, n = sum(a.correct for a in held), sum(a.n for a in held)
            row["holdout_k"], row["holdout_n"], row["holdout_wilson"] = k, n, wilson_interval(k, n)
        spectra = np.stack([m.spectrum for m in members])  # (sets, bins)
        row["freqs"] = members[0].freqs.tolist()
        row["spectrum_mean"] = spectra.mean(0).tolist()
        row["spectrum_ci"] = [mean_ci(spectra[:, j])[1] for j in range(spectra.shape[1])]
        rows.append(row)
    for row in rows:  # Welch tests against the quantum group of the same data set
        ref = next((r for r in rows if r["dataset"] == row["dataset"] and r["label"] == "quantum"), None)
        for key in ("fid", "hf"):
            ok = ref is not None and ref is not row and row["label"] != REAL_LABEL
            w = welch_diff(row[f"{key}_values"], ref[f"{key}_values"]) if ok else None  # None below 2 values a side
            row[f"{key}_p_vs_quantum"] = w["p"] if w else None
    return rows


def _fmt(mean: float, ci: float, digits: int) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" + ("" if math.isnan(ci) else f" ± {ci:.{digits}f}")


def _fmt_p(p: float | None) -> str:
    return "-" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.2g}"


def _markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    fid_labels = sorted({r["fid_label"] for r in rows})
    lines = [
        "# QLDM evaluation: quantum vs classical",
        "",
        f"- FID metric: {', '.join(fid_labels)}. Values are comparable only within this report (same"
        " extractor, same N); offline-feature FIDs are not Inception FIDs.",
        f"- Sampling: {meta.get('steps')} steps, guidance {meta.get('guidance')}, seeds {meta.get('seeds')}, "
        f"{meta.get('n')} images per seed; HF ratio = energy above {meta.get('hf_cutoff')} x Nyquist"
        " / total.",
        "- Values: mean ± Student-t 95% CI over all (run, seed) sets of a group; hair colour also pooled "
        "(Wilson 95% CI, one-sided exact binomial p against chance p0). p vs quantum: Welch t-test.",
        "",
    ]
    for dataset in sorted({r["dataset"] for r in rows}):
        lines += [
            f"## {dataset}",
            "",
            "| group | runs | sets | FID | p vs quantum | HF ratio | p vs quantum | hair colour (pooled) "
            "| Wilson 95% CI | chance | p vs chance | held-out combos |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["dataset"] == dataset):
            acc = ("-",) * 4
            if "acc_pooled" in r:
                lo, hi = r["acc_wilson"]
                acc = (
                    f"{r['acc_pooled']:.3f} ({r['acc_pooled_k']}/{r['acc_pooled_n']}, {r['acc_judge']})",
                    f"{lo:.3f}-{hi:.3f}",
                    f"{r['acc_p0']:.3f}",
                    _fmt_p(r["acc_pvalue"]),
                )
            lines.append(
                f"| {r['label']} | {len(r['runs'])} | {r['sets']} | {_fmt(r['fid_mean'], r['fid_ci'], 2)} "
                f"| {_fmt_p(r['fid_p_vs_quantum'])} | {_fmt(r['hf_mean'], r['hf_ci'], 4)} "
                f"| {_fmt_p(r['hf_p_vs_quantum'])} | " + " | ".join(acc) + f" | {_holdout(r)} |"
            )
        lines += [
            "",
            f"![spectrum]({_slug(dataset)}-spectrum.png) ![ratio]({_slug(dataset)}-spectrum-ratio.png)",
            "",
        ]
    return "\n".join(lines) + "\n"


def _holdout(row: dict[str, Any]) -> str:
    if "holdout_n" not in row:
        return "-"
    lo, hi = row["holdout_wilson"]
    return f"{row['holdout_k']}/{row['holdout_n']} ({lo:.2f}-{hi:.2f})"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def write_report(sets: list[SetMetrics], out: str | Path, *, meta: dict[str, Any]) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and per-data-set spectrum plots into ``out``.

    Args:
        sets: All measured sets, including the ``REAL_LABEL`` reference sets.
        out: Output folder.
        meta: Settings to record (steps, guidance, seeds, n, hf_cutoff, extractor, versions...).

    Returns:
        ``{"markdown", "json", <dataset>-spectrum, ...}`` paths.

    Raises:
        ValueError: If ``sets`` is empty.
    """
    if not sets:
        raise ValueError("nothing to report: no image sets were measured")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = aggregate(sets)
    paths: dict[str, Path] = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        group = [r for r in rows if r["dataset"] == dataset]
        curves = {
            r["label"]: (np.array(r["freqs"]), np.array(r["spectrum_mean"]), np.nan_to_num(r["spectrum_ci"]))
            for r in group
        }
        paths[f"{dataset}-spectrum"] = plot_spectra(
            curves, out / f"{_slug(dataset)}-spectrum.png", title=f"Radial power spectrum, {dataset}",
            cutoff=meta.get("hf_cutoff", 0.25),
        )  # fmt: skip
        real = next((r for r in group if r["label"] == REAL_LABEL), None)
        if real is not None:
            base = np.array(real["spectrum_mean"])
            ratios = {
                r["label"]: (np.array(r["freqs"]), np.array(r["spectrum_mean"]) / np.maximum(base, 1e-30))
                for r in group
            }
            paths[f"{dataset}-spectrum-ratio"] = plot_spectra(
                ratios, out / f"{_slug(dataset)}-spectrum-ratio.png",
                title=f"Power relative to real images, {dataset}", cutoff=meta.get("hf_cutoff", 0.25),
            )  # fmt: skip
    paths["json"] = out / "report.json"
    payload = {"meta": meta, "groups": rows, "sets": [s.to_dict() for s in sets]}
    # allow_nan=False: a NaN (a CI from one seed) becomes null, so the file is strict JSON.
    paths["json"].write_text(json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n")
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text(_markdown(rows, meta))
    return paths


def _finite(obj: Any) -> Any:
    """JSON-ready copy: numpy to Python, tuples to lists, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)
