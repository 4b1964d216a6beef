"""benchmarks/anime64_controls.py's summary on synthetic run folders: no training, no data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "anime64_controls.py"
_spec = importlib.util.spec_from_file_location("anime64_controls", _PATH)
controls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(controls)

# run -> (FID per sampling seed, HF ratio per seed, hair-colour hits out of 100 per seed)
RUNS = {
    "q0": ([46.0, 47.0, 48.0], [0.12, 0.12, 0.12], [70, 72, 71]),
    "q1": ([45.0, 46.0, 47.0], [0.11, 0.12, 0.13], [60, 65, 70]),
    "q2": ([47.0, 47.0, 47.0], [0.13, 0.13, 0.13], [75, 75, 75]),
    "c0": ([50.0, 50.0, 50.0], [0.12, 0.12, 0.12], [68, 68, 68]),
    "c1": ([51.0, 52.0, 53.0], [0.12, 0.13, 0.14], [66, 70, 74]),
}


def _write_run(folder: Path, fid: list[float], hf: list[float], hits: list[int]) -> None:
    folder.mkdir(parents=True)
    gen = {
        "label": "quantum" if folder.name[0] == "q" else "classical",
        "fid_values": fid,
        "hf_values": hf,
        "acc_values": [h / 100 for h in hits],
        "acc_pooled": sum(hits) / 300,
        "acc_pooled_k": sum(hits),
        "acc_pooled_n": 300,
    }
    real = {"label": "real (held-out)", "fid_values": [1.0], "hf_values": [0.23]}
    (folder / "eval_report.json").write_text(json.dumps({"groups": [real, gen]}))
    steps = [{"step": s, "loss": 1.0 / s, "gate/mid": 0.1 - 0.001 * s, "grad_share/circuit": 1e-12} for s in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in [{"epoch": 0}, *steps]))


@pytest.fixture
def results(tmp_path):
    for name, values in RUNS.items():
        _write_run(tmp_path / name, *values)
    change = {
        "lambda0": {k: {"delta": 1e-4, "ci_low": 0.0, "ci_high": 2e-4} for k in ("fid", "hf_ratio", "hair_accuracy")}
    }
    (tmp_path / "q0" / "ablation.json").write_text(json.dumps({"paired_change_vs_none": change}))
    stat = {"std_before": [0.2, 0.4, 0.6], "std_after": [1e-4, 1e-3, 1e-2]}
    (tmp_path / "q0" / "features.json").write_text(json.dumps({"statistics": [stat]}))
    (tmp_path / "x9").mkdir()  # a run that has not been evaluated yet is left out
    return tmp_path


def test_summary_groups_over_training_seeds_with_welch_differences(results):
    out = controls.summarize(results)
    q, c = out["groups"]
    assert (q["group"], q["runs"], c["group"], c["runs"]) == ("q", ["q0", "q1", "q2"], "c", ["c0", "c1"])
    q_fid = [47.0, 46.0, 47.0]  # per-run means over sampling seeds: the unit of replication is the training seed
    c_fid = [50.0, 52.0]
    assert q["fid_values"] == q_fid and c["fid_values"] == c_fid
    t = stats.t.ppf(0.975, 2)
    assert q["fid"] == pytest.approx(140 / 3) and q["fid_ci"] == pytest.approx(t * np.std(q_fid, ddof=1) / 3**0.5)
    assert q["fid_vs_quantum"] is None
    vs = c["fid_vs_quantum"]  # Welch: classical minus quantum
    va, vb = np.var(c_fid, ddof=1) / 2, np.var(q_fid, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 1 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * (va + vb) ** 0.5
    assert vs["delta"] == pytest.approx(51.0 - 140 / 3)
    assert (vs["ci_low"], vs["ci_high"]) == pytest.approx((vs["delta"] - half, vs["delta"] + half), rel=1e-10)
    # paired by training seed: c0 - q0 = 3, c1 - q1 = 6 (q2 has no partner)
    pv = c["paired_vs_quantum"]
    assert pv["pairs"] == ["c0-q0", "c1-q1"] and pv["fid"]["values"] == [3.0, 6.0]
    half = stats.t.ppf(0.975, 1) * np.std([3.0, 6.0], ddof=1) / 2**0.5
    assert (pv["fid"]["ci_low"], pv["fid"]["ci_high"]) == pytest.approx((4.5 - half, 4.5 + half), rel=1e-12)
    assert pv["fid"]["p"] == pytest.approx(2 * stats.t.sf(4.5 / (np.std([3.0, 6.0], ddof=1) / 2**0.5), 1), rel=1e-10)
    assert q["paired_vs_quantum"] is None
    # hair colour pooled over every image of the group, with a Wilson interval
    k = sum(sum(RUNS[r][2]) for r in ("q0", "q1", "q2"))
    assert q["acc_pooled"] == pytest.approx(k / 900)
    lo, hi = q["acc_wilson"]
    assert lo < k / 900 < hi and hi - lo == pytest.approx(2 * 1.96 * (k / 900 * (1 - k / 900) / 900) ** 0.5, rel=0.02)
    # traces, ablation and circuit spread travel through to the JSON and the table
    q0 = next(r for r in out["runs"] if r["run"] == "q0")
    assert q0["lambda"] == {"gate/mid": [0.099, 0.098]} and q0["grad_share"] == [1e-12, 1e-12]
    assert q0["ablation"]["lambda0"]["fid"] == [1e-4, 0.0, 2e-4]
    assert q0["output_spread"] == {"std_before": [0.4, 0.6], "std_after": [1e-3, 1e-2]}
    md = (results / "summary.md").read_text()
    assert "| classical FFN, matched params | 2 | 51.00 ± " in md and f"{vs['delta']:+.2f} [" in md
    assert "| q0 | lambda0 | +0.0001 [+0, +0.0002]" in md and "| c0-q0, c1-q1 | +4.50 [" in md
    assert json.loads((results / "summary.json").read_text())["groups"][1]["fid_values"] == c_fid
    assert (results / "controls.png").stat().st_size > 10_000


def test_summary_refuses_a_folder_without_evaluated_runs(tmp_path):
    with pytest.raises(SystemExit, match="no evaluated runs"):
        controls.summarize(tmp_path)
