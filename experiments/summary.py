"""Summaries of anime64 study runs: per-run scores, groups over training seeds, differences paired by seed.

A run folder (as :func:`experiments.runs.run_job` fills it) holds ``eval_report.json`` (FID against the held-out
faces, HF ratio and hair colour per sampling seed), ``metrics.jsonl`` and, for runs with a circuit,
``ablation.json`` and ``features.json``. The unit of replication is the training seed: groups are means over runs
with Student-t intervals, and a group is compared to its reference by the paired t-test over runs of the same
training seed (the seed fixes the data order, the sampling seeds the noise).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

__all__ = ["run_row", "paired_by_seed", "summarize", "mean_interval", "METRICS"]

METRICS = ("fid", "hf", "acc")
_NAME = re.compile(r"^(?P<group>\D+)(?P<seed>\d+)$")


def _spread(path: Path) -> dict | None:
    """Median and largest token-std of the circuit's inputs and outputs (``qldm features``), or None."""
    if not path.is_file():
        return None
    stat = json.loads(path.read_text())["statistics"]
    values = {k: np.concatenate([np.ravel(s[k]) for s in stat]) for k in ("std_before", "std_after")}
    return {k: [float(np.median(v)), float(np.max(v))] for k, v in values.items()}


def _ablation(path: Path) -> dict | None:
    """``{mode: {metric: [delta, ci_low, ci_high]}}`` from a ``qldm ablate`` report, plus the changed hair colours
    ``[share, low, high]`` and the mean pixel change where it was measured; None without a report."""
    if not path.is_file():
        return None
    out = {}
    for mode, ms in json.loads(path.read_text())["paired_change_vs_none"].items():
        entry = {k: [v["delta"], v["ci_low"], v["ci_high"]] for k, v in ms.items() if "delta" in v}
        if "hair_colour_changed" in ms:
            c = ms["hair_colour_changed"]
            entry["colour_changed"] = [c["share"], c["ci_low"], c["ci_high"]]
            entry["pixel_change"] = [ms["pixel_change"]["mean"], ms["pixel_change"]["max"]]
        out[mode] = entry
    return out


def run_row(folder: Path) -> dict | None:
    """One run's scores (means over its sampling seeds) and training traces, or None if not evaluated yet.

    The run's name is its group followed by its training seed (``q1``, ``Fc2``).
    """
    report, match = folder / "eval_report.json", _NAME.match(folder.name)
    if not report.is_file() or match is None:
        return None
    groups = json.loads(report.read_text())["groups"]
    real = next(g for g in groups if g["label"].startswith("real"))
    gen = next(g for g in groups if not g["label"].startswith("real"))
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [m for m in metrics if "step" in m and m.get("loss") is not None]
    gates = sorted({k for m in steps for k in m if k.startswith("gate/")})
    return {
        "run": folder.name,
        "group": match["group"],
        "seed": int(match["seed"]),
        "label": gen["label"],
        "fid": float(np.mean(gen["fid_values"])),
        "hf": float(np.mean(gen["hf_values"])),
        "acc": gen["acc_pooled"],
        "acc_k": gen["acc_pooled_k"],
        "acc_n": gen["acc_pooled_n"],
        "sets": {"fid": gen["fid_values"], "hf": gen["hf_values"], "acc": gen.get("acc_values", [])},
        "real_fid": float(np.mean(real["fid_values"])),
        "real_hf": float(np.mean(real["hf_values"])),
        "final_loss": float(np.mean([m["loss"] for m in steps[-10:]])),
        "steps": [m["step"] for m in steps],
        "loss": [m["loss"] for m in steps],
        "lambda": {g: [m.get(g) for m in steps] for g in gates},
        "grad_share": [m.get("grad_share/circuit") for m in steps],
        "ablation": _ablation(folder / "ablation.json"),
        "output_spread": _spread(folder / "features.json"),
    }


def mean_interval(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its Student-t 95% interval (None for a single value), for JSON and tables."""
    from qldm.eval.report import mean_ci

    mean, ci = mean_ci(list(values))
    return mean, None if np.isnan(ci) else ci


def paired_by_seed(rows: Sequence[dict], group: str, reference: str) -> dict | None:
    """``group - reference`` over runs of the same training seed: per metric the mean difference, its 95% interval
    and the paired t-test's p (``scipy.stats.ttest_1samp`` on the differences); None with fewer than 2 pairs."""
    ref = {r["seed"]: r for r in rows if r["group"] == reference}
    pairs = [(r, ref[r["seed"]]) for r in rows if r["group"] == group and r["seed"] in ref]
    if len(pairs) < 2:
        return None
    out: dict = {"pairs": [f"{a['run']}-{b['run']}" for a, b in pairs]}
    for m in METRICS:
        diff = [a[m] - b[m] for a, b in pairs]
        res = stats.ttest_1samp(diff, 0.0)
        ci = res.confidence_interval(0.95)
        out[m] = {"delta": float(np.mean(diff)), "ci_low": float(ci.low), "ci_high": float(ci.high)}
        out[m] |= {"p": float(res.pvalue), "values": diff}
    return out


def summarize(
    results: Path, *, groups: dict[str, str], reference: Callable[[str], str | None]
) -> tuple[list[dict], list[dict]]:
    """Group table over training seeds.

    Args:
        results: Folder of run folders.
        groups: Group key -> label, in table order (groups without evaluated runs are left out).
        reference: The group a group is compared with (None for a reference group itself).

    Returns:
        ``(table, rows)``: one entry per group (means, intervals, per-run values, pooled hair colour with a Wilson
        interval, the Welch and seed-paired differences to its reference), and the per-run rows.

    Raises:
        SystemExit: If no run under ``results`` is evaluated yet.
    """
    from qldm.data import wilson_interval
    from qldm.eval.report import welch_diff

    rows = [r for f in sorted(results.iterdir()) if f.is_dir() and (r := run_row(f))]
    if not rows:
        raise SystemExit(f"no evaluated runs under {results}")
    table = []
    for key, label in groups.items():
        members = [r for r in rows if r["group"] == key]
        if not members:
            continue
        entry = {"group": key, "label": label, "runs": [r["run"] for r in members], "reference": reference(key)}
        for m in (*METRICS, "final_loss"):
            entry[m], entry[f"{m}_ci"] = mean_interval([r[m] for r in members])
            entry[f"{m}_values"] = [r[m] for r in members]
        k, n = sum(r["acc_k"] for r in members), sum(r["acc_n"] for r in members)
        entry["acc_pooled"], entry["acc_wilson"] = k / n, list(wilson_interval(k, n))
        table.append(entry)
    by_key = {e["group"]: e for e in table}
    for e in table:
        ref = by_key.get(e["reference"]) if e["reference"] else None
        for m in METRICS:
            e[f"{m}_vs_ref"] = welch_diff(e[f"{m}_values"], ref[f"{m}_values"]) if ref else None
        e["paired_vs_ref"] = paired_by_seed(rows, e["group"], ref["group"]) if ref else None
    return table, rows
