"""Specs from circuits the project did not build: any ``QuantumCircuit``, or an existing ``EstimatorQNN``.

:func:`spec_from_circuit` takes the same keywords as qiskit-machine-learning's ``EstimatorQNN`` and lowers the
circuit to what every exact executor compiles: standard Qiskit gates (parameter expressions allowed) and constant
unitaries. Library circuits (``ZZFeatureMap``, ``EfficientSU2``... as classes or functions), composite gates and
``PauliEvolutionGate`` are decomposed level by level until only such gates remain.

Final measurements are dropped (expectation values do not need them; the reference ``EstimatorQNN`` refuses them
instead). Barriers and delays are kept and skipped by the executors. The global phase, which changes no expectation
value, is kept as it is, so a weight that only appears there stays declared, with zero gradient. Mid-circuit
measurements, resets and classical control flow cannot be simulated as a pure state and are refused with a one-line
message naming the instruction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp, Gate, Parameter, ParameterExpression
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.quantum_info import SparsePauliOp

from circuits.spec import CircuitSpec

__all__ = ["spec_from_circuit", "spec_from_qnn", "lower_circuit", "default_observables", "as_observables"]

_SKIP = frozenset({"barrier", "delay"})
_REFUSED = {"measure": "mid-circuit measurement", "reset": "reset", "initialize": "initialize (contains resets)"}
_MAX_LEVELS = 32  # decomposition depth bound: library circuits need 2-4 levels


def default_observables(num_qubits: int) -> tuple[SparsePauliOp]:
    """``EstimatorQNN``'s default: the single observable ``Z`` on every qubit (``Z^{(x) n}``)."""
    return (SparsePauliOp.from_sparse_list([("Z" * num_qubits, range(num_qubits), 1)], num_qubits=num_qubits),)


def as_observables(observables: Any, num_qubits: int) -> tuple[SparsePauliOp, ...]:
    """Normalise observables as ``EstimatorQNN`` accepts them: ``None``, one operator, or a sequence of them.

    Each may be a ``SparsePauliOp``, a ``Pauli``, a Pauli label string or any operator ``SparsePauliOp`` converts.

    Raises:
        ValueError: If an observable is not Hermitian or does not act on ``num_qubits`` qubits.
    """
    if observables is None:
        return default_observables(num_qubits)
    if isinstance(observables, (str, SparsePauliOp)) or not isinstance(observables, Iterable):
        observables = [observables]
    out = []
    for k, obs in enumerate(observables):
        op = obs if isinstance(obs, SparsePauliOp) else SparsePauliOp(obs)
        if op.num_qubits != num_qubits:
            raise ValueError(f"observable {k} acts on {op.num_qubits} qubits, the circuit has {num_qubits}")
        op = op.simplify(atol=0)
        if not np.allclose(op.coeffs.imag, 0.0, atol=1e-12):
            raise ValueError(f"observable {k} is not Hermitian (complex coefficients {op.coeffs[op.coeffs.imag != 0]})")
        out.append(SparsePauliOp(op.paulis, op.coeffs.real.astype(complex)))
    if not out:
        raise ValueError("observables must not be empty")
    return tuple(out)


def _is_standard(op: Gate) -> bool:
    mapping = get_standard_gate_name_mapping()
    return op.name in mapping and type(op) is type(mapping[op.name])


def _refusal(op, qubits: tuple[int, ...]) -> str | None:
    if isinstance(op, ControlFlowOp):
        return f"classical control flow {op.name!r} on qubits {qubits} cannot be simulated as a pure state"
    if op.name in _REFUSED:
        return f"{_REFUSED[op.name]} ({op.name!r} on qubits {qubits}) cannot be simulated as a pure state"
    if getattr(op, "condition", None) is not None:
        return f"classically controlled {op.name!r} on qubits {qubits} cannot be simulated as a pure state"
    return None


def _keeps_matrix(op) -> bool:
    """A parameter-free gate without a definition is kept if Qiskit knows its matrix."""
    if not isinstance(op, Gate) or any(isinstance(p, ParameterExpression) for p in op.params):
        return False
    try:
        op.to_matrix()
    except Exception:  # noqa: BLE001 - qiskit raises several types for gates without a matrix
        return False
    return True


def lower_circuit(circuit: QuantumCircuit) -> QuantumCircuit:
    """Return a copy of ``circuit`` built only from standard gates, constant unitaries, barriers and delays.

    Raises:
        ValueError: On a mid-circuit measurement, a reset, classical control flow, or an instruction that has
            neither a decomposition nor a matrix; the message names the instruction.
    """
    out = circuit.remove_final_measurements(inplace=False)
    for _ in range(_MAX_LEVELS):
        index = {q: i for i, q in enumerate(out.qubits)}
        expand: set[str] = set()
        for inst in out.data:
            op, qubits = inst.operation, tuple(index[q] for q in inst.qubits)
            reason = _refusal(op, qubits)
            if reason is not None:
                raise ValueError(f"{circuit.name}: {reason}")
            if op.name in _SKIP or (isinstance(op, Gate) and _is_standard(op)):
                continue
            if op.definition is None:
                if _keeps_matrix(op):
                    continue
                raise ValueError(f"{circuit.name}: instruction {op.name!r} on qubits {qubits} has no decomposition")
            expand.add(op.name)
        if not expand:
            break
        out = out.decompose(gates_to_decompose=sorted(expand))
    else:
        raise ValueError(f"{circuit.name}: decomposition did not reach standard gates in {_MAX_LEVELS} levels")
    if out.num_clbits and not any(inst.clbits for inst in out.data):
        out = _without_clbits(out)
    return out


def _without_clbits(circuit: QuantumCircuit) -> QuantumCircuit:
    bare = QuantumCircuit(*circuit.qregs, name=circuit.name)
    for inst in circuit.data:
        bare.append(inst.operation, inst.qubits)
    return bare


def _params(params: Sequence[Parameter] | None, role: str) -> tuple[Parameter, ...]:
    out = tuple(params) if params is not None else ()
    for p in out:
        if not isinstance(p, Parameter):
            raise ValueError(f"{role} must be qiskit Parameters, got {type(p).__name__} {p!r}")
    return out


def spec_from_circuit(
    circuit: QuantumCircuit,
    *,
    input_params: Sequence[Parameter] | None = None,
    weight_params: Sequence[Parameter] | None = None,
    observables: Any = None,
    name: str | None = None,
) -> CircuitSpec:
    """Build a :class:`CircuitSpec` from any circuit, with ``EstimatorQNN``'s keywords and defaults.

    Args:
        circuit: The parametrized circuit (library classes, composite gates and final measurements allowed).
        input_params: Parameters bound to data features, in feature order (``None``: no inputs).
        weight_params: Trainable parameters, in weight order (``None``: no weights).
        observables: ``None`` (``Z`` on every qubit, as ``EstimatorQNN``), one operator, or a sequence; any
            ``SparsePauliOp`` (X/Y terms, multi-qubit terms, real coefficients).
        name: Spec name; defaults to ``circuit.name``.

    Returns:
        A spec with all wires as data wires and no ancillas.

    Raises:
        ValueError: On an instruction that cannot be simulated (see :func:`lower_circuit`), parameters that are
            not Parameters, circuit parameters missing from both lists, or observables of the wrong width.
    """
    if not isinstance(circuit, QuantumCircuit):
        raise ValueError(f"expected a qiskit QuantumCircuit, got {type(circuit).__name__}")
    lowered = lower_circuit(circuit)
    name = name or circuit.name
    return CircuitSpec(
        circuit=lowered,
        input_params=_params(input_params, "input_params"),
        weight_params=_params(weight_params, "weight_params"),
        observables=as_observables(observables, lowered.num_qubits),
        data_qubits=tuple(range(lowered.num_qubits)),
        ancilla_qubits=(),
        name=name,
        metadata={"kind": "custom", "source": circuit.name},
    )


def spec_from_qnn(qnn: Any) -> CircuitSpec:
    """The spec of an existing ``EstimatorQNN``: its circuit, input/weight parameters and observables.

    Raises:
        ValueError: If ``qnn`` is not an ``EstimatorQNN`` (a ``SamplerQNN`` has no observables), or as
            :func:`spec_from_circuit`.
    """
    if not all(hasattr(qnn, a) for a in ("circuit", "observables", "input_params", "weight_params")):
        raise ValueError(
            f"expected an EstimatorQNN (circuit, observables, input/weight params), got {type(qnn).__name__}"
        )
    return spec_from_circuit(
        qnn.circuit, input_params=qnn.input_params, weight_params=qnn.weight_params, observables=qnn.observables
    )
