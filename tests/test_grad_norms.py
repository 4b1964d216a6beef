"""`grad_norms`: the per-group gradient norms and the circuit's share that training logs.

Sums are taken in float32 (as on the training path), hence the 1e-6 tolerance against float64 references.
"""

from __future__ import annotations

import pytest
import torch

from qldm.qffn import QFFNConfig, QuantumFeedForward
from qldm.quantum import StatevectorExecutor
from qldm.train.components import grad_norms


def test_groups_partition_the_gradient_and_share_is_the_circuits_fraction():
    torch.manual_seed(0)
    cfg = QFFNConfig(n_qubits=3, gate_init=0.7)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 8), QuantumFeedForward(8, config=cfg, executor=StatevectorExecutor(dtype=torch.float64))
    ).double()
    model(torch.randn(2, 5, 8, dtype=torch.float64)).pow(2).sum().backward()
    out = grad_norms(model)
    every = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    groups = ("classical", "quantum", "gate")
    assert sum(out[f"grad/{k}"] ** 2 for k in groups) == pytest.approx(float(every.pow(2).sum()), rel=1e-6)
    circuit = torch.cat([p.grad.flatten() for p in model[1].quantum.parameters()])
    assert out["grad/circuit"] == pytest.approx(float(circuit.norm()), rel=1e-6) and out["grad/circuit"] > 0
    assert out["grad_share/circuit"] == pytest.approx(float(circuit.pow(2).sum() / every.pow(2).sum()), rel=1e-6)
    assert 0 < out["grad_share/circuit"] < 1
