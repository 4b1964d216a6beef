"""The circuit spec: the single source of truth that every executor, hardware path and analysis reads.

A :class:`CircuitSpec` bundles one ``QuantumCircuit`` with the ordering conventions that are otherwise easy to get
wrong: which parameters are inputs and which are weights (in *spec* order, not ``circuit.parameters`` order), which
observables are read out, and which wires are data qubits or control-only ancillas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp

__all__ = ["CircuitSpec"]


@dataclass(frozen=True, eq=False)
class CircuitSpec:
    """An immutable parametrized circuit with its ordered inputs, weights and observables.

    Attributes:
        circuit: The circuit. It holds no measurements; observables are read as expectation values.
        input_params: Parameters bound to data features, in feature order. The circuit may use them inside
            parameter expressions (e.g. ``atan(x[i])``), so binding raw features gives the same state everywhere.
        weight_params: Trainable parameters, in the order of ``QuantumLayer.weight``.
        observables: One ``SparsePauliOp`` per output, each acting on all ``circuit.num_qubits`` wires.
        data_qubits: Wires that carry data and are read out.
        ancilla_qubits: Control-only wires prepared in ``|+>`` and never measured (may be empty).
        name: A short human-readable name, e.g. ``"qffn-n4-L2-per-qubit-ring"``.
        metadata: Builder arguments, enough to rebuild the spec (see :func:`circuits.build_spec`).

    Raises:
        ValueError: On construction, if parameters are missing from or foreign to the circuit, or observables do
            not match the circuit width.
    """

    circuit: QuantumCircuit
    input_params: tuple[Parameter, ...]
    weight_params: tuple[Parameter, ...]
    observables: tuple[SparsePauliOp, ...]
    data_qubits: tuple[int, ...]
    ancilla_qubits: tuple[int, ...] = ()
    name: str = "circuit"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        circuit = self.circuit.copy()
        object.__setattr__(self, "circuit", circuit)
        object.__setattr__(self, "input_params", tuple(self.input_params))
        object.__setattr__(self, "weight_params", tuple(self.weight_params))
        object.__setattr__(self, "observables", tuple(self.observables))
        object.__setattr__(self, "data_qubits", tuple(int(q) for q in self.data_qubits))
        object.__setattr__(self, "ancilla_qubits", tuple(int(q) for q in self.ancilla_qubits))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        declared = set(self.input_params) | set(self.weight_params)
        if len(declared) != len(self.input_params) + len(self.weight_params):
            raise ValueError(f"{self.name}: input and weight parameters overlap or repeat")
        used = set(circuit.parameters)
        if used != declared:
            missing, foreign = used - declared, declared - used
            raise ValueError(
                f"{self.name}: circuit parameters and spec disagree; undeclared in spec: "
                f"{sorted(p.name for p in missing)}, unused by circuit: {sorted(p.name for p in foreign)}"
            )
        for obs in self.observables:
            if obs.num_qubits != circuit.num_qubits:
                raise ValueError(
                    f"{self.name}: observable on {obs.num_qubits} qubits, circuit has {circuit.num_qubits}"
                )
        if any(op.operation.name == "measure" for op in circuit.data):
            raise ValueError(f"{self.name}: spec circuits must not contain measurements")

    # ------------------------------------------------------------------ sizes
    @property
    def num_inputs(self) -> int:
        """Number of input features (``len(input_params)``)."""
        return len(self.input_params)

    @property
    def num_weights(self) -> int:
        """Number of trainable weights (``len(weight_params)``)."""
        return len(self.weight_params)

    @property
    def num_outputs(self) -> int:
        """Number of observables, i.e. output features."""
        return len(self.observables)

    @property
    def num_qubits(self) -> int:
        """Total wires, data and ancillas."""
        return self.circuit.num_qubits

    # ------------------------------------------------------------------ binding
    def parameter_values(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Arrange inputs and weights in ``circuit.parameters`` order, as PUBs and ``assign_parameters`` expect.

        ``circuit.parameters`` is sorted by name (``w[..]`` before ``x[..]``), not in spec order; binding the spec
        order silently gives wrong results. This is the one place that mapping lives.

        Args:
            inputs: Shape ``(..., num_inputs)``.
            weights: Shape ``(num_weights,)`` or broadcastable ``(..., num_weights)``.

        Returns:
            Array of shape ``(..., circuit.num_parameters)``.

        Raises:
            ValueError: If the trailing dimensions do not match the spec.
        """
        inputs = np.asarray(inputs, dtype=float)
        weights = np.asarray(weights, dtype=float)
        if inputs.shape[-1:] != (self.num_inputs,):
            raise ValueError(f"{self.name}: inputs need last dim {self.num_inputs}, got shape {inputs.shape}")
        if weights.shape[-1:] != (self.num_weights,):
            raise ValueError(f"{self.name}: weights need last dim {self.num_weights}, got shape {weights.shape}")
        lead = np.broadcast_shapes(inputs.shape[:-1], weights.shape[:-1])
        spec_order = np.concatenate(
            [np.broadcast_to(inputs, lead + inputs.shape[-1:]), np.broadcast_to(weights, lead + weights.shape[-1:])],
            axis=-1,
        )
        position = {p: i for i, p in enumerate(self.input_params + self.weight_params)}
        perm = [position[p] for p in self.circuit.parameters]
        return spec_order[..., perm]

    def bind(self, inputs: Sequence[float], weights: Sequence[float]) -> QuantumCircuit:
        """Return the circuit with one set of values bound (spec order in, correct binding out)."""
        values = self.parameter_values(np.asarray(inputs), np.asarray(weights))
        return self.circuit.assign_parameters(dict(zip(self.circuit.parameters, values)))

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """A stable 16-hex-digit hash of what defines the computation, for caches and checkpoint checks.

        It covers the circuit (as OpenQASM 3 text), the input and weight order, the observables and which wires
        are data qubits and ancillas; not the name or the metadata, so two builds of the same circuit agree.
        """
        # QPY embeds parameter UUIDs, which differ between two builds of the same circuit; QASM text does not.
        h = hashlib.sha256(qasm3.dumps(self.circuit).encode())
        inputs, weights = ("|".join(p.name for p in ps) for ps in (self.input_params, self.weight_params))
        h.update(f"inputs={inputs};weights={weights}".encode())
        for obs in self.observables:
            h.update(repr(sorted(obs.to_list())).encode())
        h.update(f"data={list(self.data_qubits)};ancillas={list(self.ancilla_qubits)}".encode())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"CircuitSpec(name={self.name!r}, wires={self.num_qubits}, inputs={self.num_inputs}, "
            f"weights={self.num_weights}, outputs={self.num_outputs})"
        )
