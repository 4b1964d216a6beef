"""Slow hardware checks: local testing mode in Batch/Session mode and with EstimatorV2; n = 4 emulation."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import circuits
from hardware.emulator import EmulatorExecutor
from hardware.executor import RuntimeExecutor
from qldm.quantum.statevector import StatevectorExecutor

pytestmark = pytest.mark.slow


def _data(n, batch, seed=0):
    spec = circuits.qffn_circuit(n, 2)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, generator=g, dtype=torch.float64)
    w = torch.rand(spec.num_weights, generator=g, dtype=torch.float64) * 0.6
    return spec, x, w, StatevectorExecutor(dtype=torch.float64).compile(spec)(x, w)


@pytest.mark.parametrize(("mode", "estimator"), [("batch", "executor"), ("session", "v2")])
def test_local_mode_ancilla_eliminated_matches_emulator(mode, estimator):
    # Tolerance: 4 sigma of shot noise (shots split over 4 branches; the branch average keeps sigma <= 1/sqrt(shots))
    # plus 0.1 of emulator model error measured on this device.
    spec, x, w, exact = _data(2, 3)
    shots = 400
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex = RuntimeExecutor("fake:FakeManilaV2", shots=shots, mode=mode, estimator=estimator, ancilla_elimination=True)
        try:
            device = ex.compile(spec)(x, w)
        finally:
            ex.close()
        predicted = EmulatorExecutor("fake:FakeManilaV2", shots=None, ancilla_elimination=True).compile(spec)(x, w)
    assert ex.jobs_submitted == 1
    assert (device - predicted).abs().max() < 4 / math.sqrt(shots) + 0.1
    assert (device - exact).abs().max() < 0.5


def test_emulator_vs_aer_noise_n4_ancilla_eliminated():
    spec, x, w, exact = _data(4, 2, seed=1)
    kw = {"ancilla_elimination": True, "max_branches": 8}  # 8 of 16 branches, the same ones on both paths
    torch.manual_seed(0)
    emu = EmulatorExecutor("aer-noise:FakeTorino", shots=None, **kw).compile(spec)(x, w)
    torch.manual_seed(0)
    aer = RuntimeExecutor("aer-noise:FakeTorino", shots=4000, **kw).compile(spec)(x, w)
    err_emu, err_exact = float((emu - aer).abs().mean()), float((exact - aer).abs().mean())
    assert err_emu < 0.6 * err_exact, (err_emu, err_exact)
