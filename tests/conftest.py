"""Shared test helpers: Qiskit reference expectation values and seeded random circuit specs."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp, Statevector

from circuits.spec import CircuitSpec

_HAS_IBM = bool(os.environ.get("QISKIT_IBM_TOKEN"))
_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "anime-faces-64")


def pytest_collection_modifyitems(config, items):
    import torch

    skips = {
        "gpu": (not torch.cuda.is_available(), "needs CUDA"),
        "ibm": (not _HAS_IBM, "needs IBM Quantum credentials (QISKIT_IBM_TOKEN)"),
        "data": (not os.path.isdir(_DATA), "needs ../shared/data/anime-faces-64"),
    }
    for item in items:
        for mark, (skip, why) in skips.items():
            if skip and mark in item.keywords:
                item.add_marker(pytest.mark.skip(reason=why))


def reference_expectations(spec: CircuitSpec, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Exact ``<O_k>`` per row of ``inputs`` from ``qiskit.quantum_info.Statevector``: shape ``(B, n_obs)``."""
    rows = []
    for x in np.atleast_2d(inputs):
        state = Statevector(spec.bind(x, weights))
        rows.append([state.expectation_value(op).real for op in spec.observables])
    return np.asarray(rows)


_ONE = ["h", "x", "sx", "s", "t"]
_ONE_P = ["rx", "ry", "rz", "p"]
_TWO = ["cx", "cz", "swap"]
_TWO_P = ["crx", "cry", "crz", "cp", "rzz"]


def qffn_data(n_qubits=2, batch=5, scale=2 * math.pi, seed=0, ancillas="per-qubit"):
    """A seeded Q-FFN circuit case: ``(spec, x (batch, num_inputs), w (num_weights,), exact (batch, n_obs))``.

    ``exact`` comes from the float64 statevector executor, the reference the hardware executors are checked against.
    """
    import torch

    import circuits
    from qldm.quantum.statevector import StatevectorExecutor

    spec = circuits.qffn_circuit(n_qubits, 2, ancillas=ancillas)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, spec.num_inputs, generator=g, dtype=torch.float64)
    w = torch.rand(spec.num_weights, generator=g, dtype=torch.float64) * scale
    exact = StatevectorExecutor(dtype=torch.float64).compile(spec)(x, w)
    return spec, x, w, exact


def random_spec(seed: int, num_qubits: int = 4, num_gates: int = 24, num_inputs: int = 2) -> CircuitSpec:
    """A seeded random circuit over the supported gate set, with random wiring and random Pauli observables.

    Inputs enter as ``atan(x)`` and as ``x * w`` products, so input and weight gradients both pass through
    parameter expressions; observables mix I/X/Y/Z strings with real coefficients.
    """
    rng = np.random.default_rng(seed)
    x = ParameterVector("x", num_inputs)
    w = ParameterVector("w", num_gates * 3)
    qc = QuantumCircuit(num_qubits)
    used_w = 0

    def angle():
        nonlocal used_w
        used_w += 1
        p = w[used_w - 1]
        r = rng.integers(3)
        if r == 0 and num_inputs:
            return x[rng.integers(num_inputs)].arctan() + p
        if r == 1 and num_inputs:
            return x[rng.integers(num_inputs)] * p
        return p

    for i in range(num_inputs):  # every input used at least once
        qc.ry(x[i].arctan(), i % num_qubits)
    for _ in range(num_gates):
        kind = rng.integers(5)
        q = [int(v) for v in rng.choice(num_qubits, size=2, replace=False)]
        if kind == 0:
            getattr(qc, _ONE[rng.integers(len(_ONE))])(q[0])
        elif kind == 1:
            getattr(qc, _ONE_P[rng.integers(len(_ONE_P))])(angle(), q[0])
        elif kind == 2:
            getattr(qc, _TWO[rng.integers(len(_TWO))])(q[0], q[1])
        elif kind == 3:
            getattr(qc, _TWO_P[rng.integers(len(_TWO_P))])(angle(), q[0], q[1])
        elif rng.integers(2):
            qc.cu(angle(), angle(), angle(), angle(), q[0], q[1])
        else:
            qc.u(angle(), angle(), angle(), q[0])
    weights = tuple(w[:used_w])
    observables = []
    for _ in range(3):
        labels = ["".join(rng.choice(list("IXYZ"), size=num_qubits)) for _ in range(2)]
        observables.append(SparsePauliOp(labels, rng.normal(size=2)))
    return CircuitSpec(
        circuit=qc,
        input_params=tuple(x),
        weight_params=weights,
        observables=tuple(observables),
        data_qubits=tuple(range(num_qubits)),
        name=f"random-s{seed}",
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ================================================================================================================
# Micro configs (shared by the model, training and CLI tests; owned with the config code)
# ================================================================================================================


def micro_model(*, qffn: dict | None = None, **changes):
    """The ``micro`` preset's model at 16 px (8x8 latents, 16-channel text tokens), for tests without data.

    Args:
        qffn: Changes to the nested Q-FFN config, e.g. ``{"n_qubits": 3}``.
        **changes: Changes to other ``ModelConfig`` fields.

    Returns:
        A ``ModelConfig`` (not validated: tests check the errors of bad ones).
    """
    import dataclasses

    from qldm.config import make_preset

    base = make_preset("micro").model
    # the ModelConfig default epsilon target (the micro run uses tiny's v-prediction); 12 text tokens
    base = dataclasses.replace(base, image_size=16, max_text_length=12, prediction_type="epsilon")
    return dataclasses.replace(base, qffn=dataclasses.replace(base.qffn, **(qffn or {})), **changes)


@pytest.fixture
def micro_run():
    """A fresh ``micro`` run config (32 px procedural faces, one epoch)."""
    from qldm.config import make_preset

    return make_preset("micro")
