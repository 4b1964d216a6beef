"""Exact torch statevector executor against qiskit.quantum_info.Statevector, with adjoint gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_spec, reference_expectations

from circuits import bp_circuit, qffn_circuit
from qldm.quantum.statevector import StatevectorExecutor

F64 = torch.float64


def _run(spec, x, w, **kw):
    program = StatevectorExecutor(dtype=F64, **kw).compile(spec)
    return program(torch.as_tensor(x, dtype=F64), torch.as_tensor(w, dtype=F64)).detach().numpy()


@pytest.mark.parametrize("ancillas", ["per-qubit", "shared", "none"])
@pytest.mark.parametrize("readout", ["ring", "local"])
@pytest.mark.parametrize("n", [2, 3])
def test_qffn_matches_qiskit(n, ancillas, readout, rng):
    spec = qffn_circuit(n, ancillas=ancillas, readout=readout)
    x, w = rng.normal(size=(4, n)) * 2, rng.uniform(0, 2 * np.pi, spec.num_weights)
    np.testing.assert_allclose(_run(spec, x, w), reference_expectations(spec, x, w), atol=1e-6)


@pytest.mark.parametrize("ancillas", ["none", "per-qubit", "shared"])
@pytest.mark.parametrize("observable", ["z0z1", "global", "local"])
def test_bp_matches_qiskit(ancillas, observable, rng):
    spec = bp_circuit(3, 3, ancillas=ancillas, observable=observable, seed=5)
    w = rng.uniform(0, 2 * np.pi, spec.num_weights)
    np.testing.assert_allclose(_run(spec, np.zeros((1, 0)), w), reference_expectations(spec, np.zeros(0), w), atol=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_random_circuits_match_qiskit(seed, rng):
    spec = random_spec(seed)
    x, w = rng.normal(size=(3, spec.num_inputs)), rng.uniform(-3, 3, spec.num_weights)
    np.testing.assert_allclose(_run(spec, x, w), reference_expectations(spec, x, w), atol=1e-6)


def _shift_grads(spec, x, w):
    """Central finite differences of sum over outputs via Qiskit Statevector (inputs enter through atan)."""

    def f(xv, wv):
        return reference_expectations(spec, xv[None], wv).sum()

    eps = 1e-5
    gx = np.array([(f(x + eps * e, w) - f(x - eps * e, w)) / (2 * eps) for e in np.eye(len(x))])
    gw = np.array([(f(x, w + eps * e) - f(x, w - eps * e)) / (2 * eps) for e in np.eye(len(w))])
    return gx, gw


@pytest.mark.parametrize(
    "spec",
    [qffn_circuit(2, readout="ring"), random_spec(11, num_qubits=3, num_gates=14)],
    ids=lambda s: s.name,
)
def test_gradients_match_finite_differences(spec, rng):
    x, w = rng.normal(size=spec.num_inputs), rng.uniform(-3, 3, spec.num_weights)
    xt = torch.tensor(x[None], dtype=F64, requires_grad=True)
    wt = torch.tensor(w, dtype=F64, requires_grad=True)
    StatevectorExecutor(dtype=F64).compile(spec)(xt, wt).sum().backward()
    gx, gw = _shift_grads(spec, x, w)
    for got, want in ((xt.grad.numpy()[0], gx), (wt.grad.numpy(), gw)):
        assert np.linalg.norm(got - want) <= 1e-6 * max(1.0, np.linalg.norm(want))
        assert np.linalg.norm(want) > 1e-3  # the check is not vacuous


def test_gradcheck_float64():
    spec = random_spec(3, num_qubits=3, num_gates=12)
    program = StatevectorExecutor(dtype=F64).compile(spec)
    x = torch.randn(3, spec.num_inputs, dtype=F64, requires_grad=True)
    w = torch.randn(spec.num_weights, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: program(a, b), (x, w))


def test_chunked_backward_matches_unchunked_on_2000_tokens():
    spec = qffn_circuit(3)
    x = torch.randn(2000, 3, dtype=F64)
    w = torch.rand(spec.num_weights, dtype=F64) * 6
    results = []
    for kw in ({"chunk_size": 2000}, {"chunk_size": 128, "cache_bytes": 0}):
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = StatevectorExecutor(dtype=F64, **kw).compile(spec)(xr, wr)
        (out * torch.linspace(-1, 1, 3, dtype=F64)).sum().backward()
        results.append((out.detach(), xr.grad, wr.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_float32_default_close_to_float64():
    spec = qffn_circuit(3)
    x, w = torch.randn(16, 3), torch.rand(spec.num_weights) * 6
    out32 = StatevectorExecutor().compile(spec)(x, w)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), StatevectorExecutor(dtype=F64).compile(spec)(x, w), atol=1e-5, rtol=0)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="dtype"):
        StatevectorExecutor(dtype=torch.int32)
    with pytest.raises(ValueError, match="chunk_size"):
        StatevectorExecutor(chunk_size=0)
    with pytest.raises(ValueError, match="wires exceed"):
        StatevectorExecutor(max_wires=4).compile(qffn_circuit(3))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    spec = qffn_circuit(3)
    x, w = torch.randn(8, 3, dtype=F64), torch.rand(spec.num_weights, dtype=F64)
    program = StatevectorExecutor(dtype=F64).compile(spec)
    torch.testing.assert_close(program(x.cuda(), w.cuda()).cpu(), program(x, w))
