"""Designs with the circuit on the critical path: quantum-only FFNs, any set of blocks, the quanvolution, the twins.

The model tests use the micro model (no data); the training tests train the micro preset end to end (2 steps).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from diffusers.models.attention import BasicTransformerBlock

from qldm.cli import main
from qldm.eval.ablation import ablate, has_gate
from qldm.models.unet import build_unet
from qldm.qffn import ClassicalTwin, QFFNConfig, QuantumFeedForward, make_core, twin_shape
from qldm.quantum.layer import QuantumLayer
from qldm.quanv import Quanvolution
from tests.conftest import micro_model

ONLY = {"mode": "quantum-only"}


def _output(model: torch.nn.Module, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)  # (B, C, h, w) micro latents
    text = torch.randn(2, 12, 16, generator=g)  # (B, L, D)
    with torch.no_grad():
        return model(x, torch.tensor([3, 700]), text)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------ the seed's design
@pytest.mark.parametrize(
    "sets, count, total, abs_total",
    [
        ({}, 237027, 7.0784335007483605, 522.6917186453065),
        ({"quantum_blocks": "all"}, 250992, 7.206421720038634, 522.7902680421248),
        ({"qffn": {"branch": "mlp"}}, 237027, 7.071017204929376, 522.7107902028656),
        ({"quantum_blocks": "none", "match_params": True}, 251092, 10.037815063260496, 524.618544108991),
    ],
)
def test_parallel_design_builds_the_same_model_as_before(sets, count, total, abs_total):
    """The refactor into one builder and selector keeps ``parallel`` bit-identical: the parameter count and the
    output sums of the micro preset's model (seed 0) as the code before it gave them."""
    from qldm.config import apply_overrides, make_preset

    flat = [f"model.{k}={v}" for k, v in sets.items() if k != "qffn"]
    flat += [f"model.qffn.{k}={v}" for k, v in sets.get("qffn", {}).items()]
    flat.append("model.qffn.executor=statevector")  # the executor the reference sums were computed with
    torch.manual_seed(0)
    unet = build_unet(apply_overrides(make_preset("micro"), flat).model)
    g = torch.Generator().manual_seed(1)
    x, text = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 7, 16, generator=g)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference sums were taken on one thread; more reorder the float32 reductions
    try:
        with torch.no_grad():
            y = unet(x, torch.tensor([3, 500]), text).double()
    finally:
        torch.set_num_threads(threads)
    assert _params(unet) == count
    assert float(y.sum()) == pytest.approx(total, rel=1e-6, abs=1e-6)
    assert float(y.abs().sum()) == pytest.approx(abs_total, rel=1e-6)


# ---------------------------------------------------------------------------------------------------- placement
@pytest.mark.parametrize(
    "changes", [{}, {"layers_per_block": 2}, {"attention_levels": (0, 1)}, {"unet_block_channels": (16, 32, 32)}]
)
def test_block_names_from_the_config_are_the_ones_diffusers_builds(changes):
    cfg = micro_model(**changes).validate()
    unet = build_unet(cfg)
    built = [n for n, m in unet.unet.named_modules() if isinstance(m, BasicTransformerBlock)]
    assert built == cfg.transformer_blocks()


def test_any_set_of_blocks_including_the_full_resolution_level():
    cfg = micro_model(attention_levels=(0, 1), quantum_blocks="down_blocks.0,up_blocks.1.attentions.1", qffn=ONLY)
    unet = build_unet(cfg.validate())
    names = [n for n, _ in unet.quantum_modules()]
    assert names == [
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.ff",
        "unet.up_blocks.1.attentions.1.transformer_blocks.0.ff",
    ]
    for _, m in unet.quantum_modules():
        assert m.ffn is None and m.gate is None  # quantum-only: no classical FFN, no lambda


# ------------------------------------------------------------------------------------- the circuit on the path
@pytest.mark.parametrize(
    "changes",
    [
        {"quantum_blocks": "all", "qffn": ONLY},
        {"quantum_blocks": "none", "quanv_patch": 2},
    ],
    ids=["quantum-only-ffn", "quanvolution"],
)
def test_replacing_the_circuit_outputs_by_their_token_mean_changes_the_output(changes):
    torch.manual_seed(0)
    unet = build_unet(micro_model(**changes).validate())
    base = _output(unet)
    with ablate(unet, "mean") as count:
        mean = _output(unet)
    assert count == len(unet.quantum_modules()) >= 1
    change = (mean - base).abs().mean() / base.abs().mean()
    assert change > 1e-3  # the circuit's token-wise outputs reach the model's output
    assert torch.equal(_output(unet), base)  # and the hooks are gone afterwards
    assert not has_gate(unet)
    with pytest.raises(ValueError, match="needs a lambda"), ablate(unet, "lambda0"):
        pass


def test_quantum_only_ffn_is_post_of_the_circuit_alone():
    torch.manual_seed(0)
    ffn = QuantumFeedForward(8, config=QFFNConfig(n_qubits=3, mode="quantum-only"))
    x = torch.randn(2, 5, 8)  # (B, L, d)
    assert torch.allclose(ffn(x), ffn.post(ffn.quantum(ffn.pre(x))))
    assert _params(ffn) == _params(ffn.pre) + _params(ffn.quantum) + _params(ffn.post)


def test_quanvolution_is_a_residual_of_patch_circuits():
    torch.manual_seed(0)
    layer = Quanvolution(6, config=QFFNConfig(n_qubits=4), patch=2)
    h = torch.randn(2, 6, 4, 4)  # (B, C, H, W)
    z = layer.features(h)  # (B, P, n)
    assert z.shape == (2, 4, 4)
    # patch (row 0, column 1) is pixels [0:2, 2:4]; its features are pre's convolution there
    manual = (layer.pre.weight * h[:, None, :, 0:2, 2:4]).sum((2, 3, 4)) + layer.pre.bias  # (B, n)
    assert torch.allclose(z[:, 1], manual, atol=1e-6)
    q = layer.quantum(z).transpose(1, 2).reshape(2, 4, 2, 2)  # (B, n, H/k, W/k)
    assert torch.allclose(layer(h), h + layer.post(q), atol=1e-6)


# -------------------------------------------------------------------------------------------------------- twins
@pytest.mark.parametrize("n, layers", [(2, 2), (3, 2), (4, 1), (8, 2), (16, 2), (16, 3), (5, 4)])
def test_classical_twin_has_the_parameters_of_the_built_circuit_layer(n, layers):
    cfg = QFFNConfig(n_qubits=n, n_layers=layers, executor="tensornet")
    circuit = make_core(cfg)
    twin = make_core(dataclasses.replace(cfg, branch="mlp"))
    assert isinstance(circuit, QuantumLayer) and isinstance(twin, ClassicalTwin)
    assert abs(_params(twin) - _params(circuit)) <= 0.05 * _params(circuit)
    h, hidden_bias, out_bias = twin_shape(n, _params(circuit))
    assert _params(twin) == 2 * n * h + h * hidden_bias + n * out_bias
    assert twin(torch.randn(7, n)).shape == (7, n)


@pytest.mark.parametrize(
    "changes",
    [{"quantum_blocks": "all", "qffn": ONLY}, {"quantum_blocks": "none", "quanv_patch": 2}],
    ids=["quantum-only-ffn", "quanvolution"],
)
def test_twins_sit_in_the_same_place_with_the_same_size(changes):
    quantum = build_unet(micro_model(**changes).validate())
    qffn = {**changes.get("qffn", {})}
    twins = {
        b: build_unet(micro_model(**{**changes, "qffn": {**qffn, "branch": b}}).validate())
        for b in ("mlp", "nocircuit")
    }
    core = sum(_params(m.quantum) for _, m in quantum.quantum_modules())
    assert core > 0
    assert _params(twins["mlp"]) == pytest.approx(_params(quantum), rel=0.05)
    assert abs(_params(twins["mlp"]) - _params(quantum)) <= 0.05 * core  # within 5% of the circuits' own count
    assert _params(twins["nocircuit"]) == _params(quantum) - core  # exactly the circuit removed
    for twin in twins.values():
        assert [n for n, _ in twin.quantum_modules()] == [n for n, _ in quantum.quantum_modules()]
        assert all(m.circuit is None for _, m in twin.quantum_modules())


def test_no_circuit_twin_passes_features_through_atan_alone():
    ffn = QuantumFeedForward(8, config=QFFNConfig(n_qubits=3, mode="quantum-only", branch="nocircuit"))
    x = torch.randn(2, 5, 8)
    assert torch.allclose(ffn(x), ffn.post(torch.atan(ffn.pre(x))))


# --------------------------------------------------------------------------------------------- end to end, CLI
MODES = {
    "quantum-only-all": ["model.qffn.mode=quantum-only", "model.quantum_blocks=all"],
    "blocks-list": ["model.qffn.mode=quantum-only", "model.quantum_blocks=up_blocks.0,mid_block"],
    "quanvolution": ["model.quantum_blocks=none", "model.quanv_patch=2"],
    "quanv-classical-twin": ["model.quantum_blocks=none", "model.quanv_patch=4", "model.qffn.branch=mlp"],
    "no-circuit-twin": ["model.qffn.mode=quantum-only", "model.quantum_blocks=all", "model.qffn.branch=nocircuit"],
}


@pytest.mark.slow
@pytest.mark.parametrize("sets", list(MODES.values()), ids=list(MODES))
def test_every_mode_and_placement_trains_end_to_end(sets, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = tmp_path / "run"
    args = ["train", "--preset", "micro", "--out", str(run), "--no-progress", "--set", "train.epochs=2"]
    assert main([*args, *(a for s in sets for a in ("--set", s))]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if m.get("loss") is not None]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    saved = json.loads((run / "pipeline" / "unet" / "config.json").read_text())["model"]
    for s in sets:
        key, value = s.removeprefix("model.").split("=")
        field = saved["qffn"][key.removeprefix("qffn.")] if key.startswith("qffn.") else saved[key]
        assert str(field).lower() == value.lower()


@pytest.mark.parametrize(
    "sets, fragment",
    [
        (["model.quanv_patch=3"], "does not divide the 16x16 latent"),
        (["model.quantum_blocks=down_blocks.7"], "match no transformer block"),
        (["model.quantum_blocks=none", "model.qffn.branch=mlp"], "no circuit to replace"),
        (["model.quantum_blocks=none", "model.qffn.mode=quantum-only"], "no circuit to replace"),
    ],
)
def test_a_placement_the_unet_cannot_host_is_one_line_and_writes_nothing(sets, fragment, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--preset", "micro", "--out", str(run), "--no-progress"]
    assert main([*args, *(a for s in sets for a in ("--set", s))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and err[0].startswith("qldm train: error:")
    assert not run.exists() or not any(run.iterdir())
