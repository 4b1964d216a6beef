"""The array engine of the barren-plateau study against qiskit.quantum_info on the Qiskit circuits (float64)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

from analysis import engine
from analysis.engine import BPBatch, bp_axes, per_qubit_first_gradient
from circuits import bp_circuit
from qldm.quantum.shift import CONTROLLED_SHIFT

DESIGN_CONTROLS = {"none": None, "per-qubit": lambda n: tuple(range(n)), "shared": lambda n: (0,) * n}


def _qiskit_value(spec, theta: np.ndarray) -> float:
    bound = spec.circuit.assign_parameters(dict(zip(spec.weight_params, theta)))
    return float(Statevector(bound).expectation_value(spec.observables[0]).real)


def _qiskit_grad(spec, theta: np.ndarray, slot: int) -> float:
    total = 0.0
    for shift, coeff in CONTROLLED_SHIFT:  # exact for controlled and plain rotations
        moved = theta.copy()
        moved[slot] += shift
        total += coeff * _qiskit_value(spec, moved)
    return total


def _batch(design: str, n: int, layers: int, seeds: list[int], observable: str):
    """Engine rows for ``seeds``: every ancilla pattern enumerated (exact), sample-major."""
    axes = np.stack([bp_axes(n, layers, s) for s in seeds])  # (S, L, n)
    controls = DESIGN_CONTROLS[design]
    if controls is None:
        return BPBatch(axes=axes, observable=observable), None, 1
    controls = controls(n)
    n_anc = max(controls) + 1
    pats = np.array(list(itertools.product([0, 1], repeat=n_anc)))  # (2**a, a)
    k = len(pats)
    batch = BPBatch(axes=np.repeat(axes, k, 0), observable=observable, controls=controls)
    return batch, torch.as_tensor(np.tile(pats, (len(seeds), 1))), k


@pytest.mark.parametrize(
    "design,n,layers,observable",
    [("none", 3, 4, "z0z1"), ("none", 5, 3, "global"), ("per-qubit", 3, 3, "z0z1"), ("shared", 3, 3, "local")],
)
def test_engine_matches_qiskit(design, n, layers, observable):
    seeds = [3, 17, 101]
    rng = np.random.default_rng(0)
    angles = rng.uniform(0, 2 * np.pi, (len(seeds), n * layers))
    specs = [bp_circuit(n, layers, ancillas=design, observable=observable, seed=s) for s in seeds]
    for spec, s in zip(specs, seeds):  # the array draw is the circuit's draw
        assert ["".join("xyz"[a] for a in row) for row in bp_axes(n, layers, s)] == spec.metadata["axes"]
    batch, pats, k = _batch(design, n, layers, seeds, observable)
    rows = torch.as_tensor(np.repeat(angles, k, 0))
    value = batch.expectation(rows, pats).view(len(seeds), k).mean(1).numpy()
    first = batch.first_gradient(rows, pats).view(len(seeds), k).mean(1).numpy()
    full = batch.gradients(rows, pats).view(len(seeds), k, -1).mean(1).numpy()
    for i, spec in enumerate(specs):
        assert value[i] == pytest.approx(_qiskit_value(spec, angles[i]), abs=1e-10)
        assert first[i] == pytest.approx(_qiskit_grad(spec, angles[i], 0), abs=1e-10)
        for slot in (0, n + 1, n * layers - 1):
            assert full[i, slot] == pytest.approx(_qiskit_grad(spec, angles[i], slot), abs=1e-10)
    np.testing.assert_allclose(full[:, 0], first, atol=1e-12)
    assert np.abs(full).max() > 1e-3  # the comparison has power


def test_blocks_past_four_qubits_and_float32():
    # n = 9 spans three dense blocks (4, 4, 1); float32 agrees with float64 to single precision
    axes = np.stack([bp_axes(9, 6, s) for s in (1, 2)])
    angles = torch.as_tensor(np.random.default_rng(1).uniform(0, 2 * np.pi, (2, 54)))
    b64 = BPBatch(axes=axes)
    spec = bp_circuit(9, 6, seed=1)
    assert b64.first_gradient(angles)[0].item() == pytest.approx(_qiskit_grad(spec, angles[0].numpy(), 0), abs=1e-10)
    b32 = BPBatch(axes=axes, dtype=torch.float32)
    g32 = b32.first_gradient(angles.float()).double()
    torch.testing.assert_close(g32, b64.first_gradient(angles), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "n,layers,observable,pad", [(5, 4, "z0z1", 8), (5, 4, "z0z1", 2), (4, 5, "local", 3), (2, 3, "z0z1", 8)]
)
def test_chain_cut_matches_qiskit(n, layers, observable, pad, monkeypatch):
    # the per-qubit design's exact theta_1 gradient from n chain pieces, against the 2n-wire Qiskit circuit; pad:
    # pieces up to that width share one padded run (pad 2: every piece its own run)
    monkeypatch.setattr(engine, "_CUT_PAD", pad)
    seeds = [7, 8, 9]
    angles = np.random.default_rng(4).uniform(0, 2 * np.pi, (len(seeds), n * layers))
    axes = np.stack([bp_axes(n, layers, s) for s in seeds])
    cut = per_qubit_first_gradient(axes, torch.as_tensor(angles), observable).numpy()
    for i, s in enumerate(seeds):
        spec = bp_circuit(n, layers, ancillas="per-qubit", observable=observable, seed=s)
        assert cut[i] == pytest.approx(_qiskit_grad(spec, angles[i], 0), abs=1e-10)
    assert np.abs(cut).max() > 1e-3
    g32 = per_qubit_first_gradient(axes, torch.as_tensor(angles), observable, dtype=torch.float32).numpy()
    np.testing.assert_allclose(g32, cut, atol=1e-5)
    with pytest.raises(ValueError, match="chain cut"):
        per_qubit_first_gradient(axes, torch.as_tensor(angles), "global")


def test_row_chunks_and_layer_groups_do_not_change_results(monkeypatch):
    # tiny budgets: one row per chunk and one layer per group of block matrices; the results are the same numbers
    axes = np.stack([bp_axes(6, 7, s) for s in range(5)])
    angles = torch.as_tensor(np.random.default_rng(2).uniform(0, 2 * np.pi, (5, 42)))
    pats = torch.as_tensor(np.random.default_rng(3).integers(0, 2, (5, 6)))
    batch = BPBatch(axes=axes, controls=tuple(range(6)))
    ref = batch.first_gradient(angles, pats), batch.expectation(angles, pats)
    monkeypatch.setattr(engine, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(engine, "_MAT_BYTES", 1)
    torch.testing.assert_close(batch.first_gradient(angles, pats), ref[0], atol=1e-14, rtol=0)
    torch.testing.assert_close(batch.expectation(angles, pats), ref[1], atol=1e-14, rtol=0)
    assert ref[0].abs().max() > 1e-3


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="axes must"):
        BPBatch(axes=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="observable"):
        BPBatch(axes=np.zeros((1, 1, 1), dtype=int), observable="z0z1")
    batch = BPBatch(axes=np.zeros((2, 1, 2), dtype=int))
    with pytest.raises(ValueError, match="angles must"):
        batch.expectation(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="no ancillas"):
        batch.expectation(torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 2))
