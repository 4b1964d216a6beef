"""Gradient-variance analysis: engine vs analytic answers, exact vs branch, Aer parameter shift, JSON,
--resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analysis.engine import BPBatch
from analysis.gradvar import REFERENCE_SLOPE, PointConfig, fit_slope, run_point, sample_gradients, variance_ci
from analysis.results import StudyResult
from qldm.cli import build_parser
from qldm.commands import bp as cli_bp


def test_single_qubit_ry_known_variance():
    # H then RY(theta): <Z> = -sin(theta), d/dtheta = -cos(theta); theta ~ U[0, 2pi) gives Var = 1/2 exactly.
    n = 4000
    batch = BPBatch(axes=np.ones((n, 1, 1), dtype=int), observable="local")  # axis 1 = Y
    theta = torch.as_tensor(np.random.default_rng(0).uniform(0, 2 * np.pi, (n, 1)))
    torch.testing.assert_close(batch.expectation(theta), -torch.sin(theta[:, 0]))
    grad = batch.first_gradient(theta)
    torch.testing.assert_close(grad, -torch.cos(theta[:, 0]))
    torch.testing.assert_close(batch.gradients(theta)[:, 0], grad)
    var, lo, hi = variance_ci(grad.numpy(), n_boot=300)
    assert lo < 0.5 < hi
    assert abs(var - 0.5) < 0.03
    assert hi - lo < 0.05


def test_branch_variance_correction_is_unbiased():
    # true gradients g ~ N(0, 1) plus branch noise of sd 2 per branch, K = 8: the naive variance is 1 + 4/8.
    rng = np.random.default_rng(1)
    g = rng.standard_normal((20000, 1)) + 2 * rng.standard_normal((20000, 8))
    var, lo, hi = variance_ci(g, n_boot=100)
    assert lo < 1.0 < hi and abs(var - 1.0) < 0.05
    assert np.var(g.mean(1)) > 1.4  # what the uncorrected estimator would report


def test_fit_slope_recovers_exponential():
    n = np.arange(2, 9)
    var = 0.3 * np.exp(-0.7 * n)
    slope, se, icpt = fit_slope(n, var, var * 0.9, var * 1.1)
    assert abs(slope + 0.7) < 1e-9 and abs(icpt - np.log(0.3)) < 1e-9 and se < 0.05
    assert fit_slope(n[:1], var[:1], var[:1], var[:1]) is None


def test_deep_baseline_slope_matches_minus_ln2():
    rows = [
        run_point(PointConfig(design="none", n_qubits=n, n_layers=40, samples=300, seed=3), n_boot=300)
        for n in (2, 3, 4, 5, 6)
    ]
    slope, se, _ = fit_slope(
        np.arange(2, 7), *(np.array([r[k] for r in rows]) for k in ("variance", "ci_low", "ci_high"))
    )
    assert se < 0.15, "interval too wide to be a test"
    assert abs(slope - REFERENCE_SLOPE) < 1.96 * se + 0.05, (slope, se)


def test_exact_and_branch_sampled_agree():
    base = {"design": "per-qubit", "n_qubits": 4, "n_layers": 6, "samples": 150, "seed": 5, "chain_cut": False}
    exact = sample_gradients(PointConfig(**base))
    cut = sample_gradients(PointConfig(**{**base, "chain_cut": True}))
    assert cut.exact and cut.method == "statevector-cut-tangent" and cut.structure_seeds == exact.structure_seeds
    np.testing.assert_allclose(cut.first, exact.first, atol=1e-12)  # the chain cut is the full enumeration
    enumerated = sample_gradients(PointConfig(**base, max_exact_wires=4, branches=16))  # all 16 patterns: exact
    sampled = sample_gradients(PointConfig(**base, max_exact_wires=4, branches=8))
    assert exact.exact and enumerated.exact and not sampled.exact
    assert exact.method == "statevector-tangent" and sampled.method == "branch-tangent"
    np.testing.assert_allclose(enumerated.first, exact.first, atol=1e-12)
    v_exact, lo_e, hi_e = variance_ci(exact.first, n_boot=300)
    v_br, lo_b, hi_b = variance_ci(sampled.first, n_boot=300)
    assert lo_b < v_exact < hi_b and lo_e < v_br < hi_e
    # per circuit, the branch mean scatters around the exact gradient with no bias
    diff = sampled.first.mean(1) - exact.first[:, 0]
    assert abs(diff.mean()) < 3 * diff.std() / np.sqrt(len(diff))


def test_shift_rule_equals_autograd():
    cfg = {"design": "per-qubit", "n_qubits": 3, "n_layers": 5, "samples": 20, "seed": 2}
    auto = sample_gradients(PointConfig(**cfg))
    shift = sample_gradients(PointConfig(**cfg, memory_bytes=1))
    assert shift.method == "statevector-shift"
    np.testing.assert_allclose(shift.first, auto.first, atol=1e-12)


@pytest.mark.parametrize("design", ["none", "per-qubit", "shared"])
def test_aer_parameter_shift_equals_torch_gradient(design):
    from analysis.noise import aer_shift_gradients

    g_aer, seeds, cal = aer_shift_gradients(design, 3, 4, observable="z0z1", samples=6, seed=11, backend=None)
    torch_g = sample_gradients(PointConfig(design=design, n_qubits=3, n_layers=4, samples=6, seed=11))
    assert seeds == torch_g.structure_seeds and cal is None
    assert np.abs(torch_g.first).max() > 1e-3
    np.testing.assert_allclose(g_aer, torch_g.first, atol=1e-10)


def test_noisy_gradients_shrink_and_record_calibration():
    from analysis.noise import aer_shift_gradients

    noisy, _, cal = aer_shift_gradients("none", 3, 8, observable="z0z1", samples=8, seed=4, backend="fake:FakeManilaV2")
    clean, _, _ = aer_shift_gradients("none", 3, 8, observable="z0z1", samples=8, seed=4, backend=None)
    assert cal is not None and cal.startswith("20")
    assert 0 < np.abs(noisy).sum() < np.abs(clean).sum()
    assert np.abs(noisy - clean).max() > 1e-3


def test_qffn_design_pooled():
    r = run_point(PointConfig(design="qffn", n_qubits=3, n_layers=2, samples=50, pooled=True), n_boot=100)
    assert r["exact"] and r["method"] == "statevector-autograd"
    assert 0 < r["ci_low"] <= r["variance"] <= r["ci_high"] and r["pooled_variance"] > 0


def test_bad_config_raises():
    with pytest.raises(ValueError, match="unknown design"):
        PointConfig(design="bogus", n_qubits=2, n_layers=1)
    with pytest.raises(ValueError, match="pooled gradients need"):
        sample_gradients(PointConfig(design="none", n_qubits=3, n_layers=2, samples=4, pooled=True, memory_bytes=1))


def _args(tmp_path, **kw):
    argv = [
        "bp",
        "--design",
        "none,shared",
        "--n-qubits",
        "2,3",
        "--layers",
        "3",
        "--samples",
        "20",
        "--bootstrap",
        "50",
        "--out",
        str(tmp_path / "bp.json"),
    ]
    for k, v in kw.items():
        argv += [f"--{k}"] + ([] if v is True else [str(v)])
    return build_parser(argv).parse_args(argv)


def test_json_round_trip_and_resume(tmp_path, monkeypatch, capsys):
    assert cli_bp.run(_args(tmp_path)) == 0
    path = tmp_path / "bp.json"
    result = StudyResult.load(path)
    assert StudyResult.from_json(result.to_json()) == result
    assert len(result.points) == 4 and result.versions["qiskit"] != "missing" and result.settings["seed"] == 0
    assert set(result.fits) == {"none|L3", "shared|L3"}
    assert (tmp_path / "bp.png").stat().st_size > 1000
    assert "fitted slope" in capsys.readouterr().out
    # drop one point, resume: only that point runs again, and it comes back identical (seeded)
    data = json.loads(path.read_text())
    dropped = data["points"].pop()
    path.write_text(json.dumps(data))
    import analysis.study as study

    calls = []
    real = study.run_point
    monkeypatch.setattr(study, "run_point", lambda cfg, **kw: calls.append(cfg.key) or real(cfg, **kw))
    assert cli_bp.run(_args(tmp_path, resume=True)) == 0
    assert calls == [dropped["key"]]
    again = {p["key"]: p for p in StudyResult.load(path).points}
    assert again[dropped["key"]]["variance"] == pytest.approx(dropped["variance"], rel=1e-12)
    with pytest.raises(ValueError, match="schema"):
        StudyResult.from_json('{"schema": "other"}')


def test_noise_device_too_small_is_a_clear_error():
    from analysis.noise import DeviceTooSmallError, NoisyEstimator
    from circuits import bp_circuit

    with pytest.raises(DeviceTooSmallError, match="do not fit"):
        NoisyEstimator("fake:FakeManilaV2").prepare(bp_circuit(3, 1, ancillas="per-qubit"))


def test_shards_share_one_file_and_resume(tmp_path, monkeypatch):
    # two processes' shards (run one after the other here) fill one file: together they are the unsharded study
    from analysis.study import make_configs, run_study, shard

    configs = make_configs(["none", "per-qubit"], [2, 3, 4], [2, 3], samples=10)
    parts = [shard(configs, i, 2) for i in (1, 2)]
    assert sorted(c.key for p in parts for c in p) == sorted(c.key for c in configs) and all(parts)
    out = tmp_path / "bp.json"
    for part in parts:
        run_study(StudyResult(settings={}), part, n_boot=20, out=out, progress=False, merge=True)
    whole = StudyResult(settings={})
    run_study(whole, configs, n_boot=20, progress=False)
    merged = {p["key"]: p for p in StudyResult.load(out).points}
    assert set(merged) == {c.key for c in configs}
    for p in whole.points:
        assert merged[p["key"]]["variance"] == p["variance"]
    assert set(StudyResult.load(out).fits) == set(whole.fits)
    # a shard killed after some points: its rerun with the file skips what the file holds
    data = json.loads(out.read_text())
    data["points"] = [p for p in data["points"] if p["key"] not in {c.key for c in parts[1][-2:]}]
    out.write_text(json.dumps(data))
    resumed = StudyResult.load(out)
    import analysis.study as study

    ran = []
    real = study.run_point
    monkeypatch.setattr(study, "run_point", lambda cfg, **kw: ran.append(cfg.key) or real(cfg, **kw))
    run_study(resumed, parts[1], n_boot=20, out=out, progress=False, merge=True)
    assert ran == [c.key for c in parts[1][-2:]]
    assert StudyResult.load(out).done() == {c.key for c in configs}
    with pytest.raises(ValueError, match="shard"):
        shard(configs, 3, 2)


def test_cli_shards_fill_one_file_and_skip_saved_points(tmp_path, monkeypatch):
    import analysis.study as study

    ran = []
    real = study.run_point
    monkeypatch.setattr(study, "run_point", lambda cfg, **kw: ran.append(cfg.key) or real(cfg, **kw))
    for part in ("1/2", "2/2"):
        assert cli_bp.run(_args(tmp_path, shard=part)) == 0
    points = StudyResult.load(tmp_path / "bp.json").points
    assert len(points) == 4 and len(ran) == 4 and len({p["key"] for p in points}) == 4
    assert cli_bp.run(_args(tmp_path, shard="1/2")) == 0  # a rerun of a finished shard runs nothing
    assert len(ran) == 4


def test_depth_sweep_gets_a_depth_plot(tmp_path):
    """Three or more layer counts make `qldm bp` also plot variance against depth, one panel per design."""
    from analysis.plots import plot_depth

    argv = ["bp", "--design", "none,per-qubit", "--n-qubits", "2,3", "--layers", "2,3,5", "--samples", "12"]
    argv += ["--bootstrap", "20", "--out", str(tmp_path / "d.json"), "--no-progress"]
    args = build_parser(argv).parse_args(argv)
    assert cli_bp.run(args) == 0
    assert (tmp_path / "d_depth.png").stat().st_size > 1000
    fig = plot_depth(StudyResult.load(tmp_path / "d.json"))
    panels = fig.axes
    assert [ax.get_title() for ax in panels] == ["none", "per-qubit"]
    # one line per qubit count, each through the three depths
    for ax in panels:
        assert [list(c.lines[0].get_xdata()) for c in ax.containers] == [[2, 3, 5], [2, 3, 5]]
