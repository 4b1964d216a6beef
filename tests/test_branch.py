"""Ancilla-branch Monte Carlo: unbiased against exact, variance ~1/K, checkpoint-safe."""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from circuits import bp_circuit, qffn_circuit
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.statevector import BranchExecutor, StatevectorExecutor

F64 = torch.float64


@pytest.mark.parametrize("ancillas", ["per-qubit", "shared"])
def test_enumeration_is_exact(ancillas):
    spec = qffn_circuit(3, ancillas=ancillas)
    x, w = torch.randn(5, 3, dtype=F64), torch.rand(spec.num_weights, dtype=F64) * 6
    exact = StatevectorExecutor(dtype=F64).compile(spec)(x, w)
    enum = BranchExecutor(dtype=F64, exact_if_at_most=8).compile(spec)(x, w)
    torch.testing.assert_close(enum, exact, atol=1e-10, rtol=0)


def test_z_test_against_exact_n4():
    """Mean of 4000 single-branch estimates per output vs exact: |z| < 4 (two-sided level ~6e-5 per output)."""
    spec = qffn_circuit(4)
    torch.manual_seed(0)
    x = torch.randn(1, 4, dtype=F64).expand(4000, 4)
    w = torch.rand(spec.num_weights, dtype=F64) * 6
    exact = StatevectorExecutor(dtype=F64).compile(spec)(x[:1], w)[0]
    est = BranchExecutor(dtype=F64, samples=1).compile(spec)(x, w)  # (4000, 4)
    z = (est.mean(0) - exact) / (est.std(0) / est.shape[0] ** 0.5)
    assert (z.abs() < 4).all(), z
    assert (est.std(0) > 1e-3).all()  # branches differ: the test has power


def test_bp_branch_z_test():
    spec = bp_circuit(4, 3, ancillas="per-qubit", seed=1)
    torch.manual_seed(1)
    w = torch.rand(spec.num_weights, dtype=F64) * 6
    x = torch.zeros(3000, 0, dtype=F64)
    exact = StatevectorExecutor(dtype=F64).compile(spec)(x[:1], w)[0]
    est = BranchExecutor(dtype=F64).compile(spec)(x, w)
    z = (est.mean(0) - exact) / (est.std(0) / est.shape[0] ** 0.5)
    assert (z.abs() < 4).all(), z


def test_variance_scales_as_one_over_k():
    spec = qffn_circuit(4)
    torch.manual_seed(2)
    w = torch.rand(spec.num_weights, dtype=F64) * 6
    x = torch.randn(1, 4, dtype=F64).expand(3000, 4)
    v1 = BranchExecutor(dtype=F64, samples=1).compile(spec)(x, w).var(0)
    v8 = BranchExecutor(dtype=F64, samples=8).compile(spec)(x, w).var(0)
    ratio = (v1 / v8).mean()
    assert 6.0 < ratio < 10.5, ratio  # 8 expected; sampling error of variances at 3000 tokens is ~4%


def test_checkpoint_reuses_branches():
    spec = qffn_circuit(3)
    grads = []
    for use_ckpt in (False, True):
        torch.manual_seed(3)
        layer = QuantumLayer(spec, executor=BranchExecutor(dtype=F64, samples=2)).double()
        x = torch.randn(64, 3, dtype=F64, requires_grad=True)
        torch.manual_seed(4)
        out = checkpoint(layer, x, use_reentrant=False) if use_ckpt else layer(x)
        (out * torch.arange(3, dtype=F64)).sum().backward()
        grads.append((out.detach(), x.grad, layer.weight.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_gradients_are_exact_for_fixed_branches():
    spec = qffn_circuit(2)
    program = BranchExecutor(dtype=F64, samples=3).compile(spec)
    x = torch.randn(4, 2, dtype=F64, requires_grad=True)
    w = torch.rand(spec.num_weights, dtype=F64, requires_grad=True)

    def f(a, b):
        torch.manual_seed(9)  # same branches at every evaluation
        return program(a, b)

    assert torch.autograd.gradcheck(f, (x, w))


def test_invalid_specs_raise():
    with pytest.raises(ValueError, match="needs ancilla"):
        BranchExecutor().compile(qffn_circuit(3, ancillas="none"))
    with pytest.raises(ValueError, match="samples"):
        BranchExecutor(samples=0)


def test_branch_refuses_a_data_register_too_wide_for_a_statevector():
    from circuits import qffn_circuit
    from qldm.quantum.statevector import BranchExecutor

    with pytest.raises(ValueError, match="32 data qubits exceed"):
        BranchExecutor().compile(qffn_circuit(32))
