"""The critical-path study's run names, summary and ablation effect, on synthetic run folders (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from experiments import critical_path as study

# run -> (FID per sampling seed, HF ratio per seed, hair-colour hits out of 100 per seed)
RUNS = {
    "Fq0": ([40.0, 41.0, 42.0], [0.12, 0.12, 0.12], [70, 72, 71]),
    "Fq1": ([43.0, 43.0, 44.0], [0.11, 0.12, 0.13], [60, 65, 70]),
    "Fc0": ([45.0, 45.5, 46.0], [0.12, 0.12, 0.12], [68, 68, 68]),
    "Fc1": ([46.0, 47.0, 48.0], [0.12, 0.13, 0.14], [66, 70, 74]),
    "Fn0": ([50.0, 50.0, 51.0], [0.10, 0.10, 0.10], [50, 50, 50]),
}


def _write(folder: Path, fid: list[float], hf: list[float], hits: list[int]) -> None:
    folder.mkdir(parents=True)
    gen = {"label": "x", "fid_values": fid, "hf_values": hf, "acc_values": [h / 100 for h in hits]}
    gen |= {"acc_pooled": sum(hits) / 300, "acc_pooled_k": sum(hits), "acc_pooled_n": 300}
    real = {"label": "real (held-out)", "fid_values": [1.0], "hf_values": [0.23]}
    (folder / "eval_report.json").write_text(json.dumps({"groups": [real, gen]}))
    steps = [{"step": s, "loss": 1.0 / s, "grad_share/circuit": 0.01} for s in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in steps))


@pytest.fixture
def results(tmp_path):
    for name, values in RUNS.items():
        _write(tmp_path / name, *values)
    fid = {"delta": 6.0, "ci_low": 5.0, "ci_high": 7.0}
    change = {
        "mean": {
            "fid": fid,
            "hf_ratio": {"delta": 0.01, "ci_low": 0.0, "ci_high": 0.02},
            "hair_accuracy": {"delta": -0.1, "ci_low": -0.2, "ci_high": 0.0},
            "hair_colour_changed": {"share": 0.25, "ci_low": 0.2, "ci_high": 0.3, "n": 200},
            "pixel_change": {"mean": 12.5, "max": 200.0},
        }
    }
    (tmp_path / "Fq0" / "ablation.json").write_text(json.dumps({"paired_change_vs_none": change}))
    stat = {"std_before": [0.2, 0.4], "std_after": [0.05, 0.1]}
    (tmp_path / "Fq0" / "features.json").write_text(json.dumps({"statistics": [stat, stat]}))
    return tmp_path


def test_run_names_map_to_design_twin_and_seed():
    job = study.job("Vc2", vae="runs/vae64/vae")
    assert "train.seed=2" in job.sets and "model.quanv_patch=2" in job.sets and "model.qffn.branch=mlp" in job.sets
    assert not job.has_circuit and study.job("Fq0", vae="v").has_circuit
    assert "model.qffn.branch=nocircuit" in study.job("Fn1", vae="v").sets
    for bad in ("Xq0", "Fz0", "Fq", "Fqx"):
        with pytest.raises(ValueError, match="must be design"):
            study.job(bad, vae="v")


def test_report_pairs_twins_with_the_quantum_run_of_the_same_seed(results):
    out = study.report(results)
    groups = {g["group"]: g for g in out["groups"]}
    assert set(groups) == {"Fq", "Fc", "Fn"}
    fq = [np.mean(RUNS[r][0]) for r in ("Fq0", "Fq1")]
    fc = [np.mean(RUNS[r][0]) for r in ("Fc0", "Fc1")]
    assert groups["Fq"]["fid"] == pytest.approx(np.mean(fq))
    half = stats.t.ppf(0.975, 1) * np.std(fq, ddof=1) / np.sqrt(2)
    assert groups["Fq"]["fid_ci"] == pytest.approx(half)
    paired = groups["Fc"]["paired_vs_ref"]
    diff = np.subtract(fc, fq)
    assert paired["pairs"] == ["Fc0-Fq0", "Fc1-Fq1"]
    assert paired["fid"]["delta"] == pytest.approx(diff.mean())
    width = stats.t.ppf(0.975, 1) * diff.std(ddof=1) / np.sqrt(2)
    assert paired["fid"]["ci_high"] - paired["fid"]["delta"] == pytest.approx(width)
    assert groups["Fn"]["paired_vs_ref"] is None  # one seed: no paired interval
    assert groups["Fq"]["reference"] is None and groups["Fn"]["reference"] == "Fq"
    effect = next(r for r in out["runs"] if r["run"] == "Fq0")["ablation_effect"]["mean"]
    assert effect["seed_spread"] == pytest.approx(1.0)  # SD of 40, 41, 42
    assert effect["ratio"] == pytest.approx(6.0) and effect["colour_changed"] == [0.25, 0.2, 0.3]
    md = (results / "summary.md").read_text()
    assert "| Fq0 | mean | +6.00 [+5.00, +7.00] | 1.00 | +6.0 | 25.0% (20.0-30.0) | 12.50 of 255 |" in md
    assert (results / "critical_path.png").stat().st_size > 10_000
    saved = json.loads((results / "summary.json").read_text())
    assert saved["groups"][0]["group"] == "Fq" and len(saved["runs"]) == 5
