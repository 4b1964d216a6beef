"""benchmarks/compare_bp_paper.py on synthetic inputs: no paper data, no network."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from analysis import bp_compare
from analysis.results import StudyResult

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_bp_paper.py"
_spec = importlib.util.spec_from_file_location("compare_bp_paper", _PATH)
cbp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cbp)

SLOPE, INTERCEPT, LO, HI = -0.7, -1.0, 0.8, 1.25  # synthetic ln Var = INTERCEPT + SLOPE * n; CI = Var * [LO, HI]


def _ours(qubits: list[int], layers: int = 500) -> StudyResult:
    result = StudyResult(settings={"synthetic": True})
    for n in qubits:
        v = float(np.exp(INTERCEPT + SLOPE * n))
        key = f"none|n{n}|L{layers}|z0z1|N100|s0"
        point = {"design": "none", "n_qubits": n, "n_layers": layers, "observable": "z0z1", "samples": 100}
        result.add({**point, "seed": 0, "key": key, "variance": v, "ci_low": LO * v, "ci_high": HI * v, "exact": True})
    return result


def _paper(qubits: list[int], factor: float, layers: int = 500) -> list[dict]:
    """Paper points whose variance is ours / ``factor``, with the same relative interval."""
    out = []
    for n in qubits:
        v = float(np.exp(INTERCEPT + SLOPE * n)) / factor
        out.append(
            {"design": "none", "n_qubits": n, "n_layers": layers, "variance": v, "ci_low": LO * v, "ci_high": HI * v}
        )
    return out


def test_ratio_interval_and_slopes_are_recovered():
    qubits = [2, 4, 6, 8, 10]
    rows = bp_compare.compare_points(_ours(qubits).points, _paper(qubits, factor=2.0) + _paper([12], 2.0))
    assert [r["n_qubits"] for r in rows] == qubits  # n = 12 is only on the paper's side
    sigma = np.sqrt(2) * np.log(HI / LO) / (2 * 1.96)  # both log-widths in quadrature
    for r in rows:
        assert r["ratio"] == pytest.approx(2.0, rel=1e-12)
        assert r["ratio_ci"] == pytest.approx([2 * np.exp(-1.96 * sigma), 2 * np.exp(1.96 * sigma)], rel=1e-12)
        assert r["z"] == pytest.approx(np.log(2) / sigma, rel=1e-12)
        assert not r["paper_in_our_ci"]  # Var / 2 lies below Var * 0.8
        assert r["haar"] == pytest.approx(float(bp_compare.haar_variance(r["n_qubits"])), rel=1e-15)
    slopes = bp_compare.compare_slopes(rows)["none|L500"]
    for side, shift in (("ours", 0.0), ("paper", -np.log(2))):
        assert slopes[side]["slope"] == pytest.approx(SLOPE, abs=1e-10)
        assert slopes[side]["polyfit_slope"] == pytest.approx(SLOPE, abs=1e-10)
        assert slopes[side]["intercept"] == pytest.approx(INTERCEPT + shift, abs=1e-10)
    assert slopes["z"] == pytest.approx(0.0, abs=1e-6)

    inside = bp_compare.compare_points(_ours(qubits).points, _paper(qubits, factor=1.1))
    assert all(r["paper_in_our_ci"] for r in inside)  # 1 / 1.1 = 0.91 lies in [0.8, 1.25]


def test_haar_limit_values_and_monte_carlo():
    assert bp_compare.haar_variance(2) == pytest.approx(4 / 45, rel=1e-15)  # d = 4: 4 / (3 * 15)
    slope = np.polyfit([10, 12, 14, 16], np.log(bp_compare.haar_variance(np.array([10, 12, 14, 16]))), 1)[0]
    assert slope == pytest.approx(-np.log(2), abs=1e-5)  # deep limit: 2**-n

    # The formula against its definition: first rotation (random axis, angle) on |+>|+>, then a Haar unitary,
    # d<Z0 Z1>/d theta = Tr(U'OU (-i/2)[V, rho]).
    from scipy.stats import unitary_group

    rng = np.random.default_rng(7)
    paulis = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])]
    obs, plus = np.kron(paulis[2], paulis[2]), np.full(4, 0.5)
    grads = []
    for u in unitary_group.rvs(4, size=4000, random_state=rng):
        v = np.kron(paulis[rng.integers(3)], np.eye(2))
        theta = rng.uniform(0, 2 * np.pi)
        psi = (np.cos(theta / 2) * np.eye(4) - 1j * np.sin(theta / 2) * v) @ plus
        rho = np.outer(psi, psi.conj())
        grads.append((-0.5j * np.trace(u.conj().T @ obs @ u @ (v @ rho - rho @ v))).real)
    # sample variance of 4000 draws: relative SE about sqrt((kurtosis - 1) / 4000) = 0.025; allow 4 SE
    assert np.var(grads) == pytest.approx(bp_compare.haar_variance(2), rel=0.1)


def test_paper_database_and_csv_load_like_their_schema(tmp_path):
    rng = np.random.default_rng(3)
    g0, g1 = rng.normal(0, 0.3, 100), rng.normal(0, 0.1, 100)
    g0[:7] = 0.0  # exact zeros, as an X-axis first rotation gives
    db = tmp_path / "data.db"
    con = sqlite3.connect(db)  # the schema of their barren/setup_db.py, table 'single'
    con.execute(
        "CREATE TABLE single (modified BOOLEAN, qubit INTEGER, layer INTEGER, paras TEXT, gradients TEXT, "
        "variance REAL, UNIQUE(modified, qubit, layer))"
    )
    for m, g in ((0, g0), (1, g1)):
        con.execute("INSERT INTO single VALUES (?, 4, 50, '[]', ?, ?)", (m, json.dumps(g.tolist()), float(np.var(g))))
    con.commit()
    con.close()
    grads = cbp.load_paper_gradients(db)
    assert set(grads) == {("none", 4, 50), ("per-qubit", 4, 50)}
    np.testing.assert_array_equal(grads[("none", 4, 50)], g0)

    ref = cbp.load_paper(db, n_boot=200)
    assert ref["source"]["file"] == "barren/data.db" and ref["source"]["repo"] == "utai-utai/barren_plateau"
    base = next(p for p in ref["points"] if p["design"] == "none")
    assert base["variance"] == pytest.approx(np.var(g0, ddof=1), rel=1e-12)  # like ours: ddof 1
    assert base["published_variance"] == pytest.approx(np.var(g0), rel=1e-12)  # theirs: np.var, ddof 0
    assert base["ci_low"] < base["variance"] < base["ci_high"]
    assert base["zero_gradients"] == 7

    path = tmp_path / "detail_data.csv"
    path.write_text("qubit,layer,gradients,modified\n" + f'2,5,"{json.dumps(g1.tolist())}",True\n')
    assert list(cbp.load_paper_gradients(path)) == [("per-qubit", 2, 5)]


def test_main_writes_json_and_plot(tmp_path):
    qubits = [2, 4, 6]
    ours = tmp_path / "ours.json"
    _ours(qubits).save(ours)
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"source": {"repo": "synthetic"}, "points": _paper(qubits, factor=0.5)}))
    out, png = tmp_path / "cmp.json", tmp_path / "cmp.png"
    args = ["--paper-data", str(ref), "--ours", str(ours), "--out", str(out), "--plot", str(png)]
    assert cbp.main(args) == 0
    report = json.loads(out.read_text())
    assert report["summary"] == {"points": 3, "paper_in_our_ci": 0, "abs_z_over_2": 3}
    assert [r["ratio"] for r in report["points"]] == pytest.approx([0.5] * 3, rel=1e-12)
    assert png.stat().st_size > 10_000


def test_published_figure_lists_are_matched_to_the_data(tmp_path):
    values = {"none": (0.09, 0.08, 0.07, 0.02), "per-qubit": (0.009, 0.008, 0.007, 0.002)}
    points = [
        {"design": d, "n_qubits": n, "n_layers": L, "published_variance": v}
        for d, vs in values.items()
        for (n, L), v in zip(((2, 5), (2, 500), (4, 5), (4, 500)), vs)
    ]
    src = (
        "layers = [5, 500]\n"
        "def ex2_1():\n    qubits = [2, 4]\n    original_variance = [0.08, 0.02]\n"
        "    modified_variance = [0.008, 0.002]\n    proposed_variance = [0.5, 0.3]\n    p = len(qubits)\n"
        "def ex2_2():\n    original_data = [[0.09, 0.08], [0.07, 0.02]]\n"
        "    modified_data = [[0.009, 0.008], [0.007, 0.0025]]\n    proposed_data = [[0.5, 0.4], [0.3, 0.2]]\n"
    )
    path = tmp_path / "experiment.py"
    path.write_text(src)
    out = cbp.published_figures(path, points)
    assert out["ex2_2_none_equal_to_db"] == [4, 4]
    assert out["ex2_2_per-qubit_equal_to_db"] == [3, 4]  # 0.0025 differs from the database's 0.002
    assert out["ex2_1_none_layers"] == [500] and out["ex2_1_proposed_layers"] == [5]
    assert out["ex2_1_none_polyfit_slope"] == pytest.approx(np.log(0.02 / 0.08) / 2, rel=1e-12)


def test_against_haar_pools_the_log_ratio():
    pts = []
    for n in (2, 4, 6, 8):
        v = 1.2 * float(bp_compare.haar_variance(n))
        pts.append(
            {"design": "none", "n_qubits": n, "n_layers": 300, "variance": v, "ci_low": LO * v, "ci_high": HI * v}
        )
    pts.append({**pts[0], "design": "per-qubit"})  # ignored: the limit is the baseline's
    out = bp_compare.against_haar(pts, max_n=6)
    sigma = np.log(HI / LO) / (2 * 1.96)
    assert list(out) == [300] and out[300]["dof"] == 3
    assert out[300]["ratio"] == pytest.approx(1.2, rel=1e-12)
    assert out[300]["chi2"] == pytest.approx(3 * (np.log(1.2) / sigma) ** 2, rel=1e-12)
    assert out[300]["ci"] == pytest.approx(1.2 * np.exp(np.array([-1.96, 1.96]) * sigma / np.sqrt(3)), rel=1e-12)
