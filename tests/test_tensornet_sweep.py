"""The Q-FFN ring sweep against the general tensor network, the statevector executor, autograd and finite differences.

The ``ring`` executor (``qldm.quantum.tensornet.ring`` + ``sweep``) runs recognised Q-FFNs and refuses everything
else; the general ``tensornet`` network (complex, autograd through every einsum) is the reference it must equal, values
and gradients, in float64.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import reference_expectations
from qiskit.quantum_info import SparsePauliOp

from circuits import qffn_circuit
from circuits.qffn import ANCILLA_MODES, READOUTS
from circuits.spec import CircuitSpec
from qldm.quantum.registry import make_executor
from qldm.quantum.statevector import StatevectorExecutor
from qldm.quantum.tensornet import RingExecutor, RingSweepProgram, TensorNetworkExecutor, TensorNetworkProgram
from qldm.quantum.tensornet.ring import match_qffn, site_tensors
from qldm.quantum.tensornet.sweep import RingSweep, plan_sweep, ring_expectations

F64 = torch.float64


def _args(spec: CircuitSpec, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, spec.num_inputs, generator=gen, dtype=F64) * 1.5
    w = torch.rand(spec.num_weights, generator=gen, dtype=F64) * 2 * np.pi
    return x.requires_grad_(), w.requires_grad_()


def _value_and_grads(program, x, w, probe):
    out = program(x, w)
    gx, gw = torch.autograd.grad((out * probe).sum(), (x, w))
    return out.detach(), gx, gw


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("ancillas", ANCILLA_MODES)
@pytest.mark.parametrize("readout", READOUTS)
def test_sweep_equals_general_network_values_and_gradients(n, layers, ancillas, readout):
    spec = qffn_circuit(n, layers, ancillas, readout)
    sweep = RingExecutor(dtype=F64).compile(spec)
    tree = TensorNetworkExecutor(dtype=F64).compile(spec)
    assert isinstance(sweep, RingSweepProgram) and isinstance(tree, TensorNetworkProgram)
    x, w = _args(spec, 7, seed=n * 10 + layers)
    probe = torch.randn(7, n, generator=torch.Generator().manual_seed(3), dtype=F64)
    got, want = _value_and_grads(sweep, x, w, probe), _value_and_grads(tree, x, w, probe)
    assert want[0].abs().max() > 1e-3 and want[2].abs().max() > 1e-3  # not a comparison of zeros
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_four_layers_and_n16_equal_general_network():
    for spec in (qffn_circuit(4, 4, "per-qubit", "ring"), qffn_circuit(16, 2, "per-qubit", "ring")):
        x, w = _args(spec, 3, seed=5)
        probe = torch.randn(3, spec.num_outputs, generator=torch.Generator().manual_seed(4), dtype=F64)
        sweep = RingExecutor(dtype=F64).compile(spec)
        tree = TensorNetworkExecutor(dtype=F64).compile(spec)
        for a, b in zip(_value_and_grads(sweep, x, w, probe), _value_and_grads(tree, x, w, probe)):
            torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


def test_n8_matches_statevector_executor():
    spec = qffn_circuit(8, 2, "per-qubit", "ring")
    x, w = _args(spec, 6, seed=8)
    probe = torch.randn(6, 8, generator=torch.Generator().manual_seed(1), dtype=F64)
    ref = _value_and_grads(StatevectorExecutor(dtype=F64).compile(spec), x, w, probe)
    got = _value_and_grads(TensorNetworkExecutor(dtype=F64).compile(spec), x, w, probe)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("ancillas,readout", [("per-qubit", "ring"), ("shared", "local"), ("none", "ring")])
def test_hand_written_backward_equals_autograd(ancillas, readout):
    spec = qffn_circuit(6, 3, ancillas, readout)  # D = 16: the batched-GEMM product path
    ring = match_qffn(spec)
    plan = plan_sweep(ring.masks)
    x, w = _args(spec, 5, seed=2)
    site = site_tensors(ring, w.detach()).requires_grad_()
    probe = torch.randn(5, 6, generator=torch.Generator().manual_seed(9), dtype=F64)
    grads = [
        torch.autograd.grad((ring_expectations(x, site, plan, autograd=a) * probe).sum(), (x, site)) for a in (0, 1)
    ]
    for a, b in zip(*grads):
        assert b.abs().max() > 1e-3
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)


def test_ring_sweep_gradcheck():
    spec = qffn_circuit(3, 2, "per-qubit", "ring")
    ring = match_qffn(spec)
    x, w = _args(spec, 2, seed=6)
    site = site_tensors(ring, w.detach()).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: RingSweep.apply(a, b, plan_sweep(ring.masks)), (x, site))


def test_matches_qiskit_and_chunks_share_the_call_weights():
    spec = qffn_circuit(4, 2, "per-qubit", "ring")
    x, w = _args(spec, 9, seed=7)
    probe = torch.randn(9, 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    whole = _value_and_grads(RingExecutor(dtype=F64).compile(spec), x, w, probe)
    chunked_program = RingExecutor(dtype=F64, chunk_size=2).compile(spec)
    chunked = _value_and_grads(chunked_program, x, w, probe)
    for a, b in zip(chunked, whole):
        torch.testing.assert_close(a, b, atol=1e-14, rtol=0)
    # a second call (new graph) with other weights uses the new weights
    w2 = (w.detach() + 0.3).requires_grad_()
    want = reference_expectations(spec, x.detach().numpy(), w2.detach().numpy())
    np.testing.assert_allclose(chunked_program(x, w2).detach().numpy(), want, atol=1e-12, rtol=0)


def test_float32_agrees_with_float64():
    spec = qffn_circuit(16, 2, "per-qubit", "ring")
    x, w = _args(spec, 64, seed=3)
    f32 = RingExecutor().compile(spec)(x.detach().float(), w.detach().float())
    f64 = RingExecutor(dtype=F64).compile(spec)(x.detach(), w.detach())
    assert f32.dtype == torch.float32 and f64.abs().max() > 0.01
    torch.testing.assert_close(f32.double(), f64, atol=2e-5, rtol=0)


def _modified(spec: CircuitSpec, **changes) -> CircuitSpec:
    fields = {k: getattr(spec, k) for k in ("circuit", "input_params", "weight_params", "observables")}
    fields |= {"data_qubits": spec.data_qubits, "ancilla_qubits": spec.ancilla_qubits}
    return CircuitSpec(**(fields | changes), name="modified", metadata=dict(spec.metadata))


def test_ring_refuses_anything_but_an_exact_qffn_in_one_line_and_tensornet_runs_it():
    spec = qffn_circuit(3, 2, "per-qubit", "ring")
    extra = spec.circuit.copy()
    extra.h(0)  # one gate more
    swapped = list(spec.weight_params)
    swapped[0], swapped[1] = swapped[1], swapped[0]  # same circuit, weights in another order
    other_obs = (SparsePauliOp.from_sparse_list([("X", [0], 1.0)], 6), *spec.observables[1:])
    custom = (
        _modified(spec, circuit=extra),
        _modified(spec, weight_params=tuple(swapped)),
        _modified(spec, observables=other_obs),
        CircuitSpec(spec.circuit, spec.input_params, spec.weight_params, spec.observables, spec.data_qubits),
    )
    for bad in custom:
        program = TensorNetworkExecutor(dtype=F64).compile(bad)
        assert isinstance(program, TensorNetworkProgram), bad.name
        x, w = _args(bad, 3, seed=1)
        want = reference_expectations(bad, x.detach().numpy(), w.detach().numpy())
        np.testing.assert_allclose(program(x, w).detach().numpy(), want, atol=1e-10, rtol=0)
        for call in (RingExecutor().compile, RingExecutor().check_spec):
            with pytest.raises(ValueError, match="runs only an unmodified qffn_circuit") as err:
                call(bad)
            assert "\n" not in str(err.value) and str(err.value).startswith(bad.name)
    deep = qffn_circuit(3, 5, "per-qubit", "ring")
    assert match_qffn(deep) is None  # deeper than the sweep takes
    with pytest.raises(ValueError, match="'ring' executor"):
        RingExecutor().compile(deep)
    assert isinstance(TensorNetworkExecutor().compile(deep), TensorNetworkProgram)


def test_tensornet_never_switches_to_the_ring():
    spec = qffn_circuit(16, 2, "per-qubit", "ring")
    assert isinstance(TensorNetworkExecutor().compile(spec), TensorNetworkProgram)
    program = make_executor("ring").compile(spec)
    assert isinstance(program, RingSweepProgram)
    assert program.ring.bond == 4 and 1e4 < program.flops_per_token < 1e5


def test_ring_equals_tensornet_on_the_paper_qffn_float64():
    spec = qffn_circuit(16, 2, "per-qubit", "ring")
    x, w = _args(spec, 5, seed=11)
    ring = RingExecutor(dtype=F64).compile(spec)(x.detach(), w.detach())
    tree = TensorNetworkExecutor(dtype=F64).compile(spec)(x.detach(), w.detach())
    assert tree.shape == (5, 16) and tree.abs().max() > 5e-3  # not zeros against zeros (long Z strings are small)
    assert (ring - tree).abs().max().item() < 1e-10


def test_ring_options_describe_and_rebuild():
    ex = RingExecutor(dtype=F64, chunk_size=7, max_chunk_elements=1000)
    desc = json.loads(json.dumps(ex.describe()))
    assert desc == {"name": "ring", "dtype": "torch.float64", "device": None, "chunk_size": 7,
                    "max_chunk_elements": 1000}  # fmt: skip
    assert make_executor(**desc).describe() == desc
