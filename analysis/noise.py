"""Gradients under a device noise model: parameter shift on Aer's density-matrix estimator.

A noise model built from a fake backend's calibration (``NoiseModel.from_backend``) only acts on the device's basis
gates and qubits, so each circuit is transpiled to the fake device first (its coupling map and basis). The expectation
is exact under the noise (density matrix, precision 0), so the only randomness is the circuit draw. Noise channels do
not depend on the angle, so ``<O>(theta_1)`` keeps the frequencies {1/2, 1} and the four-term shift rule of
:mod:`qldm.quantum.shift` stays exact. Controlled rotations are decomposed into RY/RZ/CX before anything binds at run
time (Aer misreads run-time-bound ``crx``/``cry``/``crz``: docs/quantum-facts.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from circuits import bp_circuit
from circuits.spec import CircuitSpec
from qldm.quantum.shift import CONTROLLED_SHIFT

__all__ = ["NoisyEstimator", "DeviceTooSmallError", "calibration_date", "aer_shift_gradients"]


class DeviceTooSmallError(ValueError):
    """The circuit has more wires than the fake device has qubits."""


def calibration_date(backend: Any) -> str | None:
    """The calibration date of a (fake) backend's properties snapshot, ISO format, or ``None`` if it has none."""
    props = backend.properties() if hasattr(backend, "properties") else None
    date = getattr(props, "last_update_date", None)
    return date.isoformat() if date is not None else None


class NoisyEstimator:
    """Exact expectation values of specs on Aer, noiseless or with a fake device's noise model.

    Args:
        backend: ``None`` for noiseless Aer, or a name ``"fake:<FakeName>"``/``"aer-noise:<FakeName>"``.

    Raises:
        ValueError: On an unknown backend name (from :func:`hardware.backends.resolve_backend`).
    """

    def __init__(self, backend: str | None = None) -> None:
        from qldm.quantum.aer import aer_estimator

        self.device = None
        opts: dict[str, Any] = {"method": "density_matrix"}
        if backend is not None:
            from qiskit_aer.noise import NoiseModel

            from hardware.backends import resolve_backend

            kind, _, fake = backend.partition(":")
            self.device = resolve_backend(f"aer-noise:{fake}" if kind == "fake" else backend).backend
            opts["noise_model"] = NoiseModel.from_backend(self.device)
        self.name = backend or "aer"
        self.estimator = aer_estimator(precision=0.0, backend_options=opts)

    @property
    def calibration(self) -> str | None:
        """Calibration date of the noise model's snapshot (``None`` when noiseless)."""
        return calibration_date(self.device) if self.device is not None else None

    def prepare(self, spec: CircuitSpec) -> tuple[Any, list[Any]]:
        """Decompose (and for a device, transpile) ``spec.circuit``; return it with its mapped observables."""
        from qiskit import transpile

        from qldm.quantum.aer import decompose_for_aer

        if self.device is not None and spec.num_qubits > self.device.num_qubits:
            raise DeviceTooSmallError(
                f"{spec.name}: {spec.num_qubits} wires do not fit {self.name} ({self.device.num_qubits} qubits)"
            )
        circuit = decompose_for_aer(spec.circuit)
        observables = list(spec.observables)
        if self.device is not None:
            circuit = transpile(circuit, backend=self.device, optimization_level=1, seed_transpiler=0)
            observables = [o.apply_layout(circuit.layout) for o in observables]
        return circuit, observables

    def outputs(self, spec: CircuitSpec, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Every observable of ``spec`` for each row: inputs ``(R, n_in)``, weights ``(R, n_w)`` or ``(n_w,)``
        in spec order; returns ``(R, n_obs)``."""
        circuit, observables = self.prepare(spec)
        inputs = np.asarray(inputs, dtype=float)
        values = spec.parameter_values(inputs, np.asarray(weights, dtype=float))  # (R, P), spec.circuit order
        order = {p.name: i for i, p in enumerate(spec.circuit.parameters)}
        values = values[:, [order[p.name] for p in circuit.parameters]]  # the decomposed circuit's order
        obs = [[o] for o in observables]  # shape (n_obs, 1): broadcasts against the (R,) parameter rows
        (res,) = self.estimator.run([(circuit, obs, values)]).result()
        return np.asarray(res.data.evs, dtype=float).reshape(len(observables), -1).T

    def expectations(self, spec: CircuitSpec, weights: np.ndarray) -> np.ndarray:
        """``<O_0>`` of an input-free spec for each row of ``weights (R, num_weights)``; returns ``(R,)``."""
        weights = np.asarray(weights, dtype=float)
        return self.outputs(spec, np.zeros((len(weights), 0)), weights)[:, 0]

    def shift_gradient(self, spec: CircuitSpec, weights: np.ndarray, slot: int = 0) -> float:
        """``d<O_0>/d weights[slot]`` by the four-term shift rule (exact for Pauli and controlled rotations)."""
        rows = np.repeat(np.asarray(weights, dtype=float)[None], len(CONTROLLED_SHIFT), axis=0)
        for r, (shift, _) in enumerate(CONTROLLED_SHIFT):
            rows[r, slot] += shift
        evs = self.expectations(spec, rows)
        return float(sum(c * e for (_, c), e in zip(CONTROLLED_SHIFT, evs)))


def aer_shift_gradients(
    design: str,
    n_qubits: int,
    n_layers: int,
    *,
    observable: str,
    samples: int,
    seed: int,
    backend: str | None,
) -> tuple[np.ndarray, list[int], str | None]:
    """Gradient samples d<O>/d theta_1 of random bp circuits on (noisy) Aer, with the same draws as
    :func:`analysis.gradvar.sample_gradients` for the same point and seed.

    Returns:
        ``(gradients (N, 1), structure seeds, calibration date or None)``.

    Raises:
        ValueError: For the ``"qffn"`` design (not a bp circuit) or an unknown backend.
    """
    from analysis.gradvar import DESIGNS

    if design not in DESIGNS[:3]:
        raise ValueError(f"noisy runs support the bp designs {DESIGNS[:3]}, got {design!r}")
    rng = np.random.default_rng([seed, DESIGNS.index(design), n_qubits, n_layers])
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=samples)]
    est = NoisyEstimator(backend)
    grads = []
    for s in seeds:
        spec = bp_circuit(n_qubits, n_layers, ancillas=design, observable=observable, seed=s)
        angles = rng.uniform(0, 2 * np.pi, spec.num_weights)
        grads.append(est.shift_gradient(spec, angles))
    return np.asarray(grads)[:, None], seeds, est.calibration
