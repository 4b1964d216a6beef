"""QuantumLayer shapes and errors; QuantumFeedForward gradients of the quantum weights and of lambda."""

from __future__ import annotations

import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp

from circuits import qffn_circuit
from circuits.spec import CircuitSpec
from qldm.qffn import QFFNConfig, QuantumFeedForward
from qldm.quantum import UnsupportedInstructionError, make_executor
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.statevector import StatevectorExecutor

F64 = torch.float64


@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (2, 1, 4)])
def test_shapes_over_input_ranks(lead):
    layer = QuantumLayer(qffn_circuit(3), executor=StatevectorExecutor(dtype=F64)).double()
    x = torch.randn(*lead, 3, dtype=F64, requires_grad=True)
    out = layer(x)
    assert out.shape == (*lead, 3)
    out.sum().backward()
    assert x.grad.shape == x.shape and layer.weight.grad.shape == (layer.spec.num_weights,)
    flat = layer(x.detach().reshape(-1, 3)).reshape(*lead, 3)
    torch.testing.assert_close(out.detach(), flat)


def test_bad_inputs_raise(monkeypatch):
    monkeypatch.setenv("QLDM_DEBUG", "1")  # NaN/inf checks cost a host sync, so they run only in debug mode
    layer = QuantumLayer(qffn_circuit(3), executor=StatevectorExecutor())
    with pytest.raises(ValueError, match="last dimension 3"):
        layer(torch.randn(4, 2))
    with pytest.raises(ValueError, match="last dimension 3"):
        layer(torch.randn(2, 4, 2))  # a wrong width is refused, never reshaped into other tokens
    with pytest.raises(ValueError, match="NaN/inf"):
        layer(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="NaN/inf"):
        layer(torch.tensor([[0.0, float("inf"), 1.0]]))
    with pytest.raises(ValueError, match="unknown quantum executor 'nope'"):
        make_executor("nope")
    with pytest.raises(TypeError, match="Executor instance"):
        QuantumLayer(qffn_circuit(3), executor="statevector")  # names are resolved in the registry only


@pytest.mark.parametrize("inst", ["reset", "measure"])
def test_unsupported_instruction_named(inst):
    theta = Parameter("w0")
    qc = QuantumCircuit(2, 2)
    qc.ry(theta, 0)
    if inst == "reset":
        qc.reset(1)
        spec = CircuitSpec(qc, (), (theta,), (SparsePauliOp("IZ"),), (0, 1))
        with pytest.raises(UnsupportedInstructionError, match="'reset'"):
            QuantumLayer(spec, executor=StatevectorExecutor())
    else:
        qc.measure(0, 0)  # the spec itself refuses measurements, with a clear error
        with pytest.raises(ValueError, match="measurements"):
            CircuitSpec(qc, (), (theta,), (SparsePauliOp("IZ"),), (0, 1))


def _qffn(**kw):
    torch.manual_seed(0)
    return QuantumFeedForward(6, config=QFFNConfig(n_qubits=3, **kw), executor=StatevectorExecutor(dtype=F64)).double()


def test_qffn_gradients_of_weights_and_gate_match_finite_differences():
    model = _qffn()
    x = torch.randn(2, 4, 6, dtype=F64)
    target = torch.randn(2, 4, 6, dtype=F64)

    def loss() -> torch.Tensor:
        return ((model(x) - target) ** 2).mean()

    loss().backward()
    eps = 1e-6
    for param, idx in ((model.quantum.weight, [0, 4, 10]), (model.gate, [None])):
        for i in idx:
            view = param.data.view(-1)
            j = 0 if i is None else i
            old = view[j].item()
            view[j] = old + eps
            up = loss().item()
            view[j] = old - eps
            down = loss().item()
            view[j] = old
            fd = (up - down) / (2 * eps)
            got = param.grad.view(-1)[j].item()
            assert abs(got - fd) <= 1e-6 * max(1e-3, abs(fd)), (param.shape, j, got, fd)
            assert abs(fd) > 1e-7  # a detached branch would give 0 (w[11] is a final RZ: 0)


@pytest.mark.parametrize("branch", ["quantum", "mlp", "shuffled"])
def test_all_branch_modes_run(branch):
    model = _qffn(branch=branch)
    x = torch.randn(2, 4, 6, dtype=F64)
    out = model(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.sum().backward()
    assert model.gate.grad is not None and model.gate.grad != 0


def test_fixed_gate_gets_no_gradient():
    model = _qffn(gate_trainable=False, gate_init=0.2)
    model(torch.randn(3, 6, dtype=F64)).sum().backward()
    assert "gate" not in dict(model.named_parameters())
    assert model.gate.grad is None and model.quantum.weight.grad is not None
