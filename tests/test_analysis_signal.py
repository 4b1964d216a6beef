"""Signal, simulability, feature maps and gradient flow of the Q-FFN."""

from __future__ import annotations

import json

import numpy as np
import torch

from analysis.expressivity import schmidt_rank, sensitivity, simulability
from analysis.features import feature_maps, map_statistics
from analysis.gradflow import GradFlowRecorder, synthetic_latents, tiny_model, train_steps
from qldm.cli import build_parser
from qldm.commands import expressivity as cli_expressivity


def test_ancilla_ring_readout_concentrates():
    kw = {"inputs": 48, "weight_draws": 2, "seed": 1}
    plain4 = sensitivity(4, ancillas="none", **kw)
    anc2, anc4 = sensitivity(2, **kw), sensitivity(4, **kw)
    local4 = sensitivity(4, readout="local", ancillas="none", init="small", **kw)
    assert np.median(anc4.spread) < 0.6 * np.median(plain4.spread)
    assert np.median(anc4.grad_norm) < np.median(anc2.grad_norm)
    assert np.median(local4.spread) > np.median(anc4.spread)
    assert all(s > 0 for s in anc4.spread) and anc4.executor == "statevector"


def test_schmidt_rank_known_states_and_growth_with_layers():
    product = np.zeros(8, dtype=complex)
    product[0] = 1
    assert schmidt_rank(product, [0], 3) == 1
    bell = np.zeros(4, dtype=complex)
    bell[0] = bell[3] = 2**-0.5
    assert schmidt_rank(bell, [0], 2) == 2
    ranks = [r["schmidt_rank"] for r in simulability(4, [1, 2])]
    assert ranks == [4, 16]  # 4**L across a ring cut until the 2**(wires) ceiling


def test_expressivity_cli(tmp_path, capsys):
    argv = [
        "expressivity",
        "--n-qubits",
        "2,3",
        "--ancillas",
        "per-qubit",
        "--readout",
        "ring",
        "--init",
        "uniform",
        "--inputs",
        "8",
        "--weight-draws",
        "1",
        "--sim-qubits",
        "3",
        "--sim-layers",
        "1,2",
        "--out",
        str(tmp_path / "e.json"),
    ]
    args = build_parser(argv).parse_args(argv)
    assert cli_expressivity.run(args) == 0
    assert (tmp_path / "e_sensitivity.png").exists() and (tmp_path / "e_simulability.png").exists()
    assert "classically" in capsys.readouterr().out


def test_feature_maps_match_the_quantum_layer():
    model, _ = tiny_model(n_qubits=3)
    model.eval()
    blocks = feature_maps(model, synthetic_latents(1), 400, torch.randn(1, 4, 16))
    assert len(blocks) == len(model.quantum_modules())
    assert {b.before.shape for b in blocks} == {(3, 8, 8), (3, 4, 4)}  # the blocks' own resolutions
    name, mod = model.quantum_modules()[0]
    blk = next(b for b in blocks if b.name == name)
    tokens = torch.as_tensor(blk.before).reshape(3, -1).T  # (T, n)
    with torch.no_grad():
        expected = mod.quantum(tokens).T.reshape(3, *blk.before.shape[1:])
    np.testing.assert_allclose(blk.after, expected.numpy(), atol=1e-5)
    assert all(max(s["std_after"]) > 0 for s in map_statistics(blocks))


def test_gradient_flow_records_and_flags():
    model, cfg = tiny_model(n_qubits=2, quantum_blocks="bottleneck")
    rec = train_steps(model, cfg, steps=6, batch=4, lr=3e-3)
    losses = [r["loss"] for r in rec.rows if "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0]
    row = rec.rows[-1]
    assert row["quantum"] > 0 and row["classical"] > 0 and row["gate"] > 0
    assert abs(row["lam"] - 0.1) > 1e-6  # lambda moved
    fake = GradFlowRecorder(model)
    fake.rows = [{"step": 0, "block": "b", "quantum": 1e-9, "classical": 1.0, "gate": 0.1, "lam": 1e-5}]
    flags = fake.flags()
    assert any("vanish" in f for f in flags) and any("collapsed" in f for f in flags)


def test_noisy_estimator_outputs_match_statevector_without_noise():
    from analysis.noise import NoisyEstimator
    from circuits import qffn_circuit
    from qldm.quantum import StatevectorExecutor

    spec = qffn_circuit(2, 2, ancillas="per-qubit")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 2)), rng.uniform(0, 2 * np.pi, spec.num_weights)
    exact = StatevectorExecutor(dtype=torch.float64).compile(spec)(torch.as_tensor(x), torch.as_tensor(w)).numpy()
    np.testing.assert_allclose(NoisyEstimator(None).outputs(spec, x, w), exact, atol=1e-12)
    noisy = NoisyEstimator("fake:FakeManilaV2").outputs(spec, x, w)
    assert 1e-3 < np.abs(noisy - exact).max() < 0.5


def test_features_command_fresh_and_from_checkpoint(tmp_path, capsys):
    from qldm.cli import main

    fresh = tmp_path / "fresh"
    assert main(["features", "--n-qubits", "2", "--train-steps", "2", "--out", str(fresh)]) == 0
    record = json.loads((fresh / "features.json").read_text())
    assert (fresh / "feature_maps.png").stat().st_size > 1000 and (fresh / "gradient_flow.png").is_file()
    assert len(record["statistics"]) == len(record["high_frequency"]) > 0
    assert all(len(s["std_after"]) == 2 for s in record["statistics"])
    assert {r["step"] for r in record["gradient_flow"]["rows"]} == {0, 1}
    model, _ = tiny_model(n_qubits=2, quantum_blocks="bottleneck")
    model.save_pretrained(tmp_path / "unet")
    saved = tmp_path / "saved"
    assert main(["features", "--checkpoint", str(tmp_path / "unet"), "--out", str(saved)]) == 0
    record = json.loads((saved / "features.json").read_text())
    assert len(record["statistics"]) == 1 and "gradient_flow" not in record
    assert not (saved / "gradient_flow.png").exists()
    assert main(["features", "--checkpoint", str(tmp_path / "none"), "--out", str(saved)]) == 2
    assert "holds no QLDMUNet" in capsys.readouterr().err
