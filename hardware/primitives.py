"""Estimator primitives per backend kind, with shots/precision and resilience options applied.

- ``aer`` without shots: ``qiskit_aer.primitives.EstimatorV2`` (exact expectation values, precision 0).
- ``aer`` with shots, ``aer-noise``: ``qiskit.primitives.BackendEstimatorV2`` on the ``AerSimulator`` (real
  shot sampling of measured bitstrings, with the device noise model for ``aer-noise``).
- ``fake``/``ibm``: the runtime Estimator. qiskit-ibm-runtime 0.50+ deprecates ``EstimatorV2`` for the client-side
  ``qiskit_ibm_runtime.executor_estimator.Estimator``; we use that one where it works, else ``EstimatorV2``. Measured
  here (runtime 0.51): in local testing mode the new Estimator *does* apply measurement mitigation (TREX) on the client
  (``<Z>`` of ``|1>`` on FakeManilaV2: -0.9595 raw, -1.0004 with TREX), but it simulates the whole device register, so
  on large fake devices (FakeTorino, 133 qubits) Aer runs out of memory; there ``auto`` falls back to ``EstimatorV2``,
  whose local mode ignores resilience options (runtime warns so). ZNE, dynamical decoupling and gate twirling only have
  their effect on a real device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hardware.backends import ResolvedBackend

__all__ = ["Resilience", "make_estimator", "EstimatorFactory", "LOCAL_EXECUTOR_MAX_QUBITS"]

# Largest fake device on which the client-side Estimator's local simulation fits (it does not drop idle qubits).
LOCAL_EXECUTOR_MAX_QUBITS = 20
EstimatorKind = Literal["auto", "executor", "v2"]
EstimatorFactory = Callable[[Any, dict], Any]


@dataclass(frozen=True)
class Resilience:
    """Error suppression and mitigation requested from the runtime Estimator.

    Attributes:
        measure_mitigation: TREX readout mitigation (``resilience.measure_mitigation``).
        zne: Zero-noise extrapolation (``resilience.zne_mitigation``).
        dynamical_decoupling: ``dynamical_decoupling.enable``.
        twirling: Pauli twirling of gates and measurements (``twirling.enable_gates/enable_measure``).
    """

    measure_mitigation: bool = False
    zne: bool = False
    dynamical_decoupling: bool = False
    twirling: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def apply_options(options: Any, *, shots: int | None, precision: float | None, resilience: Resilience) -> None:
    """Set shots/precision and resilience on a runtime ``EstimatorOptions`` (new or V2: same names)."""
    if shots is not None:
        options.default_shots = int(shots)
    if precision is not None:
        options.default_precision = float(precision)
    # level 0 = raw; each requested technique is then switched on explicitly, so nothing is on by default
    options.resilience_level = 0
    options.resilience.measure_mitigation = resilience.measure_mitigation
    options.resilience.zne_mitigation = resilience.zne
    options.dynamical_decoupling.enable = resilience.dynamical_decoupling
    options.twirling.enable_gates = resilience.twirling
    options.twirling.enable_measure = resilience.twirling or resilience.measure_mitigation


def runtime_estimator_class(resolved: ResolvedBackend, kind: EstimatorKind) -> type:
    """The runtime Estimator class for ``kind`` (see module docstring for ``auto``)."""
    from qiskit_ibm_runtime import EstimatorV2

    if kind == "v2":
        return EstimatorV2
    try:
        from qiskit_ibm_runtime.executor_estimator import Estimator
    except ImportError:  # runtime < 0.50
        return EstimatorV2
    if kind == "executor":
        return Estimator
    if resolved.kind == "fake" and resolved.num_qubits > LOCAL_EXECUTOR_MAX_QUBITS:
        return EstimatorV2
    return Estimator


def make_estimator(
    resolved: ResolvedBackend,
    mode: Any,
    *,
    shots: int | None,
    precision: float | None,
    resilience: Resilience,
    estimator: EstimatorKind = "auto",
) -> Any:
    """Build the Estimator primitive for ``resolved``.

    Args:
        resolved: The backend.
        mode: For runtime kinds, the backend, a ``Session`` or a ``Batch``; ignored for Aer.
        shots: Shots per parameter set (``None``: exact on ``aer``, the primitive's default elsewhere).
        precision: Target standard error instead of shots.
        resilience: Requested mitigation (runtime only).
        estimator: ``"auto"``, ``"executor"`` (client-side Estimator) or ``"v2"`` (``EstimatorV2``).

    Returns:
        An object with ``run(pubs, precision=None) -> job`` whose ``job.result()[i].data.evs`` are the values.
    """
    if resolved.kind in ("aer", "aer-noise"):
        if resolved.kind == "aer" and shots is None and precision is None:
            from qldm.quantum.aer import aer_estimator

            return aer_estimator(precision=0.0)
        from qiskit.primitives import BackendEstimatorV2

        eff = precision if precision is not None else (1.0 / shots**0.5 if shots else 1.0 / 1024**0.5)
        return BackendEstimatorV2(backend=resolved.simulator, options={"default_precision": eff})
    cls = runtime_estimator_class(resolved, estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # EstimatorV2 deprecation: fallback is deliberate
        primitive = cls(mode=mode)
    apply_options(primitive.options, shots=shots, precision=precision, resilience=resilience)
    return primitive
