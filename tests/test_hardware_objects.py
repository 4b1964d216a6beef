"""``RuntimeExecutor`` takes Qiskit's objects as qiskit-ibm-runtime's ``EstimatorV2(mode=...)`` does: a backend
instance, or an open ``Session``/``Batch``."""

from __future__ import annotations

import math
import warnings

import pytest
from conftest import qffn_data as _data
from qiskit_aer import AerSimulator
from qiskit_ibm_runtime import Batch, Session
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from hardware.backends import BackendError
from hardware.executor import RuntimeExecutor
from hardware.primitives import make_estimator


def _recording(ex: RuntimeExecutor) -> list:
    """Make ``ex`` record the ``mode`` each primitive is built with."""
    modes = []

    def factory(mode, opts):
        modes.append(mode)
        return make_estimator(ex.resolved, mode, **opts)

    ex.estimator_factory = factory
    return modes


def test_a_fake_backend_instance_runs_like_its_name():
    spec, x, w, exact = _data(batch=2, scale=0.6)
    ex = RuntimeExecutor(FakeManilaV2(), shots=400)
    assert (ex.resolved.kind, ex.resolved.name) == ("fake", "fake:FakeManilaV2")
    assert ex.describe()["backend"] == "fake:FakeManilaV2"  # rebuildable by name
    modes = _recording(ex)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ex.compile(spec)(x, w)
    assert isinstance(modes[0], FakeManilaV2)
    assert (out - exact).abs().max() < 4 / math.sqrt(400) + 0.3  # device noise (see test_hardware_executor)


@pytest.mark.parametrize("kind", [Batch, Session])
def test_an_open_batch_or_session_is_the_mode_and_stays_open(kind):
    spec, x, w, _ = _data(batch=2, scale=0.6)
    with kind(backend=FakeManilaV2()) as opened:
        for ex in (RuntimeExecutor(opened, shots=100), RuntimeExecutor("fake:FakeManilaV2", mode=opened, shots=100)):
            modes = _recording(ex)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ex.compile(spec)(x, w)
            assert modes == [opened] and ex.mode == kind.__name__.lower()
            ex.close()  # the caller's: not closed by the executor
            assert ex._mode_obj is opened


def test_a_noiseless_aer_simulator_is_exact_without_shots():
    spec, x, w, exact = _data(batch=2)
    ex = RuntimeExecutor(AerSimulator(), shots=None)
    assert ex.resolved.kind == "aer"
    assert (ex.compile(spec)(x, w) - exact).abs().max() < 1e-6


def test_other_objects_are_refused_in_one_line():
    with pytest.raises(BackendError, match="cannot run on a object") as err:
        RuntimeExecutor(object())
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="mode must be"):
        RuntimeExecutor("aer", mode="sometimes")
    with Batch(backend=FakeManilaV2()) as batch, pytest.raises(ValueError, match="runs runtime backends"):
        RuntimeExecutor("aer", mode=batch)
