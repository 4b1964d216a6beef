"""Intervals computed by scipy instead of by hand: the same numbers as the textbook and as the code they replace."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.gradvar import _branch_variance, variance_ci
from qldm.data import wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(7, 10, 0.39678, 0.89221), (0, 10, 0.0, 0.27753), (10, 10, 0.72247, 1.0), (66, 93, 0.61057, 0.79215)],
)
def test_wilson_interval_matches_the_closed_form(k, n, low, high):
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    got = wilson_interval(k, n)
    assert got == pytest.approx((max(0.0, centre - half), min(1.0, centre + half)), abs=1e-8)
    assert got == pytest.approx((low, high), abs=1e-5)
    assert isinstance(got[0], float) and isinstance(got[1], float)


def test_wilson_interval_z_sets_the_level():
    narrow, wide = wilson_interval(30, 100, z=1.0), wilson_interval(30, 100, z=2.575829)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(11, 10)


@pytest.mark.parametrize("shape", [(60,), (60, 8)])
def test_variance_ci_is_the_percentile_bootstrap_over_circuits(shape):
    """scipy's percentile bootstrap, resampling whole circuits (rows), as the hand-written loop it replaces did."""
    g = np.random.default_rng(1).standard_normal(shape)
    var, low, high = variance_ci(g, n_boot=400, seed=3)
    rows = g[:, None] if g.ndim == 1 else g
    idx = np.random.default_rng(3).integers(0, len(rows), size=(400, len(rows)))
    boots = np.array([_branch_variance(rows[i]) for i in idx])
    assert var == pytest.approx(_branch_variance(rows))
    assert (low, high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), rel=1e-12)
    assert low < var < high
