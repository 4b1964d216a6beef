"""Circuit specs: construction errors, parameter order, fingerprints, QPY/QASM3 export, drawing, bp structure."""

from __future__ import annotations

import io
import json

import matplotlib
import numpy as np
import pytest
import torch
from conftest import reference_expectations
from qiskit import QuantumCircuit, qpy
from qiskit.circuit import Parameter
from qiskit.quantum_info import Operator, SparsePauliOp, Statevector

from circuits import bp_circuit, build_spec, draw, from_qpy, qffn_circuit, spec_from_circuit, to_qasm3, to_qpy
from circuits.spec import CircuitSpec
from qldm.quantum.statevector import StatevectorExecutor

matplotlib.use("Agg")


def test_construction_errors():
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    with pytest.raises(ValueError, match="undeclared in spec"):
        CircuitSpec(qc, (), (), (SparsePauliOp("IZ"),), (0, 1))
    with pytest.raises(ValueError, match="unused by circuit"):
        CircuitSpec(qc, (a,), (b,), (SparsePauliOp("IZ"),), (0, 1))
    with pytest.raises(ValueError, match="overlap"):
        CircuitSpec(qc, (a,), (a,), (SparsePauliOp("IZ"),), (0, 1))
    with pytest.raises(ValueError, match="observable on 3 qubits"):
        CircuitSpec(qc, (a,), (), (SparsePauliOp("IIZ"),), (0, 1))
    with pytest.raises(ValueError, match="ancilla mode"):
        qffn_circuit(3, ancillas="both")
    with pytest.raises(ValueError, match="readout"):
        qffn_circuit(3, readout="global")
    with pytest.raises(ValueError, match="z0z1"):
        bp_circuit(1, 2)


def test_parameter_values_order_matters():
    spec = qffn_circuit(3)
    names = [p.name for p in spec.circuit.parameters]
    assert names != [p.name for p in spec.input_params + spec.weight_params]  # sorted: w[..] before x[..]
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=3), rng.uniform(0, 2 * np.pi, spec.num_weights)
    right = Statevector(spec.circuit.assign_parameters(spec.parameter_values(x, w)))
    wrong = Statevector(spec.circuit.assign_parameters(np.concatenate([x, w])))  # spec order: the 0.14 pitfall
    ours = StatevectorExecutor(dtype=torch.float64).compile(spec)(torch.tensor(x[None]), torch.tensor(w))[0]
    ref = [right.expectation_value(o).real for o in spec.observables]
    bad = [wrong.expectation_value(o).real for o in spec.observables]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-10)
    assert np.abs(np.array(ref) - bad).max() > 1e-3
    np.testing.assert_allclose(Statevector(spec.bind(x, w)).data, right.data, atol=1e-12)
    with pytest.raises(ValueError, match="inputs need last dim 3"):
        spec.parameter_values(np.zeros(2), w)


def test_fingerprint_stable_across_rebuilds():
    a, b = qffn_circuit(4), qffn_circuit(4)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != qffn_circuit(4, readout="local").fingerprint()
    assert build_spec(dict(a.metadata)).fingerprint() == a.fingerprint()
    bp = bp_circuit(3, 2, ancillas="per-qubit", seed=4)
    assert build_spec(dict(bp.metadata)).fingerprint() == bp.fingerprint()


def test_qpy_and_qasm3_round_trip(tmp_path):
    spec = qffn_circuit(3)
    path = to_qpy(spec, tmp_path / "c.qpy")
    with path.open("rb") as fh:
        loaded = qpy.load(fh)[0]
    assert loaded == spec.circuit
    text = to_qasm3(spec, tmp_path / "c.qasm")
    assert (tmp_path / "c.qasm").read_text() == text
    for i in range(3):
        assert f"input float[64] _x_{i}_;" in text  # the raw features are the program's inputs
    for i in range(spec.num_weights):
        assert f"input float[64] _w_{i}_;" in text
    assert "atan(_x_0_)" in text  # the encoding stays a parameter expression
    buf = io.BytesIO()
    qpy.dump(spec.circuit, buf)
    assert buf.tell() > 0


def _assert_equal_specs(a: CircuitSpec, b: CircuitSpec) -> None:
    assert b.fingerprint() == a.fingerprint()
    assert b.circuit == a.circuit
    assert (b.input_params, b.weight_params) == (a.input_params, a.weight_params)
    assert all(x.equiv(y) for x, y in zip(a.observables, b.observables)) and len(a.observables) == len(b.observables)
    assert (b.data_qubits, b.ancilla_qubits, b.name) == (a.data_qubits, a.ancilla_qubits, a.name)
    assert json.loads(json.dumps(dict(b.metadata))) == json.loads(json.dumps(dict(a.metadata)))


def _custom_spec() -> CircuitSpec:
    from qiskit.circuit.library import efficient_su2, zz_feature_map

    fm, an = zz_feature_map(3, reps=1), efficient_su2(3, reps=1)
    obs = [SparsePauliOp.from_list([("XYZ", 0.5), ("IZX", -1.25)]), SparsePauliOp("ZII")]
    return spec_from_circuit(fm.compose(an), input_params=fm.parameters, weight_params=an.parameters, observables=obs)


@pytest.mark.parametrize("which", ["qffn", "bp", "custom"])
def test_qpy_carries_the_spec(tmp_path, which):
    spec = {
        "qffn": lambda: qffn_circuit(3),
        "bp": lambda: bp_circuit(3, 2, ancillas="per-qubit", seed=4),
        "custom": _custom_spec,
    }[which]()
    loaded = from_qpy(to_qpy(spec, tmp_path / "c.qpy"))
    _assert_equal_specs(spec, loaded)
    x, w = (
        np.random.default_rng(1).uniform(-1, 1, (2, spec.num_inputs)),
        np.random.default_rng(2).uniform(size=spec.num_weights),
    )
    np.testing.assert_allclose(reference_expectations(loaded, x, w), reference_expectations(spec, x, w), atol=1e-12)
    plain = tmp_path / "plain.qpy"
    with plain.open("wb") as fh:
        qpy.dump(spec.circuit, fh)
    with pytest.raises(ValueError, match="carries no 'qldm_spec'"):
        from_qpy(plain)


def _loaded_values(text: str, values: dict[str, float]) -> QuantumCircuit:
    from qiskit import qasm3

    loaded = qasm3.loads(text)
    return loaded.assign_parameters({p: values[p.name] for p in loaded.parameters})


@pytest.mark.parametrize("which", ["qffn", "custom"])
def test_qasm3_loads_back_equivalent(which):
    """qffn encodes through atan, which qasm3.loads cannot resolve: its inputs are bound on the way out; the
    library circuit (arithmetic encodings only) loads back with its inputs still free."""
    spec = qffn_circuit(3) if which == "qffn" else _custom_spec()
    rng = np.random.default_rng(5)
    x, w = rng.uniform(-1, 1, spec.num_inputs), rng.uniform(-np.pi, np.pi, spec.num_weights)
    names = {p: "_" + p.name.replace("[", "_").replace("]", "_") for p in spec.input_params + spec.weight_params}
    bound = spec.bind(x, w)
    text = to_qasm3(spec, inputs=x)  # features bound through the encoding, weights stay inputs
    assert "atan" not in text and "input float[64] _x_0_" not in text
    circuit = _loaded_values(text, {names[p]: v for p, v in zip(spec.weight_params, w)})
    np.testing.assert_allclose(Operator(circuit).data, Operator(bound).data, atol=1e-10)
    if which == "custom":  # no function calls: loads back with every parameter free
        values = {names[p]: v for p, v in zip(spec.input_params + spec.weight_params, [*x, *w])}
        circuit = _loaded_values(to_qasm3(spec), values)
        np.testing.assert_allclose(Operator(circuit).data, Operator(bound).data, atol=1e-10)
    else:
        with pytest.raises(Exception, match="cannot be resolved"):
            _loaded_values(to_qasm3(spec), {})
    with pytest.raises(ValueError, match="finite values"):
        to_qasm3(spec, inputs=[0.1])


def test_draw_returns_figure(tmp_path):
    fig = draw(qffn_circuit(2), tmp_path / "c.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_bp_structure_seeded_and_reproducible():
    a, b = bp_circuit(4, 3, ancillas="per-qubit", seed=7), bp_circuit(4, 3, ancillas="per-qubit", seed=7)
    assert a.metadata["axes"] == b.metadata["axes"]
    assert a.fingerprint() == b.fingerprint()
    assert bp_circuit(4, 3, seed=8).metadata["axes"] != bp_circuit(4, 3, seed=7).metadata["axes"]
    counts = a.circuit.count_ops()
    assert counts["h"] == 8 and counts["cz"] == 3 * 3
    assert sum(counts.get(g, 0) for g in ("crx", "cry", "crz")) == 12
    assert a.num_qubits == 8 and a.ancilla_qubits == (4, 5, 6, 7) and a.num_outputs == 1
    for inst in a.circuit.data:  # each rotation is controlled by its own data qubit's ancilla
        if inst.operation.name.startswith("cr"):
            ctrl, tgt = (a.circuit.find_bit(q).index for q in inst.qubits)
            assert ctrl == tgt + 4
