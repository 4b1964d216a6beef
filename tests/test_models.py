"""Model components: config, quantum U-Net (shapes, save/load, checkpointing, gradients), diffusion loss."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import micro_model

from qldm.models import (
    CircuitMismatchError,
    ModelConfig,
    QLDMUNet,
    build_unet,
    check_circuit_compatible,
    diffusion_loss,
    drop_captions,
    make_sample_scheduler,
    make_train_scheduler,
)
from qldm.qffn import QuantumFeedForward
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.statevector import StatevectorExecutor

# the micro model: one layer per level, 2 heads of 8 channels at level 0, 8x8 latents, 2 data qubits (4 wires)
tiny = micro_model


def inputs(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, 8, 8, generator=g)  # (B, C, h, w)
    h = torch.randn(batch, 8, 16, generator=g)  # (B, L, D)
    m = torch.ones(batch, 8, dtype=torch.long)
    m[:, 5:] = 0  # padded text tokens
    t = torch.tensor([10, 700][:batch] + [3] * max(0, batch - 2))
    return x, t, h, m


def model(seed: int = 0, **kw) -> QLDMUNet:
    torch.manual_seed(seed)
    return build_unet(tiny(**kw))


# --------------------------------------------------------------------------------------------------- config
def test_config_json_round_trip_keeps_tuples():
    cfg = tiny(attention_levels=(0, 1), quantum_blocks="all")
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and isinstance(back.unet_block_channels, tuple)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"qffn": {"n_qubits": 13}}, "tensornet"),  # 26 wires with per-qubit ancillas
        ({"quantum_blocks": "middle"}, "quantum_blocks"),
        ({"image_size": 18}, "divisible"),
        ({"qffn": {"executor": "magic"}}, "qffn.executor"),
        ({"attention_levels": (2,)}, "attention_levels"),
        ({"match_params": True}, "match_params"),
        ({"text_encoder": "some/t5", "train_text_encoder": True}, "frozen"),
        ({"prediction_type": "x0"}, "prediction_type"),
    ],
)
def test_config_validate_names_the_problem(kw, needle):
    with pytest.raises(ValueError, match=needle):
        tiny(**kw).validate()


def test_config_rejects_unknown_fields_and_accepts_big_circuits_on_tensornet():
    with pytest.raises(ValueError, match="n_qbits"):
        ModelConfig.from_dict({"n_qbits": 4})
    assert tiny(qffn={"n_qubits": 16, "executor": "tensornet"}).validate().qffn.spec().num_qubits == 32


# -------------------------------------------------------------------------------------------------- U-Net
def test_output_shape_and_quantum_block_counts():
    x, t, h, m = inputs()
    counts = {}
    for blocks in ("none", "bottleneck", "all"):
        unet = model(quantum_blocks=blocks)
        assert unet(x, t, h, m).shape == x.shape
        counts[blocks] = [n for n, _ in unet.quantum_modules()]
    # down level 1 (1 block) + mid (1) + up level 1 (layers_per_block + 1 = 2)
    assert len(counts["none"]) == 0 and len(counts["all"]) == 4
    assert counts["bottleneck"] == ["unet.mid_block.attentions.0.transformer_blocks.0.ff"]


def test_paper_layout_has_the_original_11_transformer_blocks():
    # 4 levels, 2 layers per block, transformers at the 2nd and 3rd level and in the mid block (original code)
    cfg = tiny(
        image_size=64, unet_block_channels=(8, 16, 16, 32), attention_levels=(1, 2), layers_per_block=2,
        quantum_blocks="all", qffn={"n_qubits": 1},
    )  # fmt: skip
    assert len(build_unet(cfg).quantum_modules()) == 11


def test_shape_errors_are_clear():
    unet = model()
    x, t, h, m = inputs()
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        unet(x, t, h[..., :8], m)
    with pytest.raises(ValueError, match="encoder_attention_mask"):
        unet(x, t, h, m[:, :4])


def test_parameter_groups_cover_every_parameter_once():
    unet = model(quantum_blocks="all")
    groups = unet.parameter_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(unet.parameters()))
    assert len(groups["gate"]) == 4
    qffn = unet.quantum_modules()[0][1]
    assert id(qffn.quantum.weight) in {id(p) for p in groups["quantum"]}
    assert id(qffn.ffn[0].weight) in {id(p) for p in groups["classical"]}


def test_match_params_gives_the_quantum_models_parameter_count():
    n_q = sum(p.numel() for p in model(quantum_blocks="all").parameters())
    n_c = sum(p.numel() for p in model(quantum_blocks="none", match_params=True).parameters())
    n_plain = sum(p.numel() for p in model(quantum_blocks="none").parameters())
    # rounding costs at most half a hidden unit (2d + 1 <= 65 parameters) per block
    assert abs(n_q - n_c) <= 4 * 33 and n_plain < n_c


def test_save_load_round_trip_rebuilds_quantum_layers(tmp_path):
    unet = model(quantum_blocks="all", attention_levels=(0, 1)).eval()
    x, t, h, m = inputs()
    with torch.no_grad():
        ref = unet(x, t, h, m)
    unet.save_pretrained(tmp_path)
    back = QLDMUNet.from_pretrained(tmp_path).eval()
    assert len(back.quantum_modules()) == len(unet.quantum_modules()) == 7
    assert isinstance(back.quantum_modules()[0][1].quantum, QuantumLayer)
    for (name, a), (_, b) in zip(unet.quantum_modules(), back.quantum_modules()):
        assert torch.equal(a.quantum.weight, b.quantum.weight), name
    with torch.no_grad():
        assert torch.equal(back(x, t, h, m), ref)
    assert back.circuit_metadata() == unet.circuit_metadata()


def test_eval_is_deterministic_and_attention_dropout_only_trains():
    unet = model(attention_dropout=0.5)
    x, t, h, m = inputs()
    with torch.no_grad():
        train_a, train_b = unet(x, t, h, m), unet(x, t, h, m)
        unet.eval()
        eval_a, eval_b = unet(x, t, h, m), unet(x, t, h, m)
    assert not torch.allclose(train_a, train_b)  # dropout is really applied in training
    assert torch.equal(eval_a, eval_b)


def _grads(unet: QLDMUNet, checkpoint: bool) -> tuple[dict[str, torch.Tensor], int]:
    calls = []
    # a pre-hook: torch's non-reentrant checkpoint stops the recompute once the saved tensors are back, before the Q-FFN
    # returns, so a post-forward hook would not see it
    hooks = [m.register_forward_pre_hook(lambda *_: calls.append(1)) for _, m in unet.quantum_modules()]
    if checkpoint:
        unet.enable_gradient_checkpointing()
    else:
        unet.disable_gradient_checkpointing()
    unet.zero_grad()
    x, t, h, m = inputs()
    torch.manual_seed(1)
    unet(x, t, h, m).square().mean().backward()
    for hook in hooks:
        hook.remove()
    return {n: p.grad.clone() for n, p in unet.named_parameters() if p.grad is not None}, len(calls)


def test_gradient_checkpointing_gives_identical_gradients_and_recomputes_blocks():
    unet = model(quantum_blocks="all")
    plain, calls_plain = _grads(unet, checkpoint=False)
    ckpt, calls_ckpt = _grads(unet, checkpoint=True)
    assert calls_plain == 4 and calls_ckpt == 8  # every transformer block ran again in the backward pass
    assert plain.keys() == ckpt.keys() and any(".quantum.weight" in k for k in plain)
    for k in plain:
        torch.testing.assert_close(ckpt[k], plain[k], rtol=0, atol=1e-7, msg=k)


def test_gradients_reach_gate_and_circuit_weights_through_the_unet():
    unet = model(quantum_blocks="bottleneck").double().eval()
    unet.set_quantum_executor(StatevectorExecutor(dtype=torch.float64))
    qffn: QuantumFeedForward = unet.quantum_modules()[0][1]
    x, t, h, m = (v.double() if v.is_floating_point() else v for v in inputs())
    target = torch.randn_like(x, generator=torch.Generator().manual_seed(3))

    def loss() -> torch.Tensor:
        return (unet(x, t, h, m) - target).square().mean()

    loss().backward()
    for param, idx in ((qffn.gate, ()), (qffn.quantum.weight, (1,))):
        eps = 1e-5
        with torch.no_grad():
            param[idx] += eps
            up = loss().item()
            param[idx] -= 2 * eps
            down = loss().item()
            param[idx] += eps
        fd = (up - down) / (2 * eps)
        assert param.grad[idx].item() != 0
        assert param.grad[idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-10)


def test_set_quantum_executor_and_circuit_compatibility():
    unet = model(quantum_blocks="all")
    changed = unet.set_quantum_executor(StatevectorExecutor(dtype=torch.float64), blocks="bottleneck")
    assert changed == ["unet.mid_block.attentions.0.transformer_blocks.0.ff"]
    executors = {n: m.quantum.executor.dtype for n, m in unet.quantum_modules()}
    assert executors[changed[0]] == torch.float64 and list(executors.values()).count(torch.float32) == 3
    with pytest.raises(ValueError, match="unknown quantum block"):
        unet.set_quantum_executor("statevector", blocks=["unet.nope"])

    saved = unet.circuit_metadata()
    check_circuit_compatible(saved, tiny(quantum_blocks="all").circuit_metadata())  # same circuit: passes
    with pytest.raises(CircuitMismatchError, match=r"n_qubits: checkpoint has 2, requested 3.*ancillas"):
        check_circuit_compatible(saved, {"n_qubits": 3, "n_layers": 2, "ancillas": "shared"})
    with pytest.raises(ValueError, match="n_layers"):
        check_circuit_compatible(saved, {"n_layers": 5})
    # the fingerprint decides: a different circuit under the same builder arguments is refused too
    other = tiny(quantum_blocks="all", qffn={"readout": "local"}).circuit_metadata()
    with pytest.raises(CircuitMismatchError, match="fingerprint"):
        check_circuit_compatible(saved, {"fingerprint": other["fingerprint"]})


# ---------------------------------------------------------------------------------------------- diffusion
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_diffusion_loss_trains_both_targets(prediction):
    cfg = tiny(prediction_type=prediction)
    unet = model(prediction_type=prediction)
    sched = make_train_scheduler(cfg)
    x, _, h, m = inputs()
    loss = diffusion_loss(unet, x, h, m, sched, cfg, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert unet.quantum_modules()[0][1].quantum.weight.grad.abs().sum() > 0
    again = diffusion_loss(unet, x, h, m, sched, cfg, generator=torch.Generator().manual_seed(0))
    assert again.item() == loss.item()  # the generator fixes t and the noise


def test_v_target_is_the_scheduler_velocity():
    cfg = tiny(prediction_type="v_prediction")
    sched = make_train_scheduler(cfg)
    x0, eps, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([0, 999])
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(sched.get_velocity(x0, eps, t), a.sqrt() * eps - (1 - a).sqrt() * x0)
    with pytest.raises(ValueError, match="predicts"):
        diffusion_loss(model(), x0, *inputs()[2:], sched, tiny(prediction_type="epsilon"))
    with pytest.raises(ValueError, match="sampler"):
        make_sample_scheduler("euler", cfg)


def test_drop_captions_is_per_sample():
    b = 200
    hidden, mask = torch.randn(b, 8, 16), torch.ones(b, 8, dtype=torch.long)
    empty_h, empty_m = torch.zeros(b, 8, 16), torch.zeros(b, 8, dtype=torch.long)
    empty_m[:, 0] = 1
    out_h, out_m = drop_captions(hidden, mask, empty_h, empty_m, 0.3, torch.Generator().manual_seed(0))
    dropped = (out_h == 0).all(dim=(1, 2))
    assert 30 < dropped.sum() < 90  # Binomial(200, 0.3): mean 60, sd 6.5
    assert torch.equal(out_h[~dropped], hidden[~dropped]) and torch.equal(out_m[dropped], empty_m[dropped])
    assert torch.equal(drop_captions(hidden, mask, empty_h, empty_m, 0.0)[0], hidden)
    with pytest.raises(ValueError, match="p must"):
        drop_captions(hidden, mask, empty_h, empty_m, 1.5)


# ---------------------------------------------------------------------------------------------- precision
def test_half_precision_load_keeps_circuit_weights_fp32_and_simulation_outside_autocast(tmp_path):
    unet = model(quantum_blocks="all").eval()
    unet.save_pretrained(tmp_path)
    half = QLDMUNet.from_pretrained(tmp_path, torch_dtype=torch.bfloat16).eval()
    qffn = half.quantum_modules()[0][1]
    assert qffn.quantum.weight.dtype == torch.float32 and qffn.ffn[0].weight.dtype == torch.bfloat16

    seen = []
    layer = unet.quantum_modules()[0][1].quantum
    program = layer.program

    def spy(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        seen.append((x.dtype, torch.is_autocast_enabled("cpu")))
        return program(x, w)

    layer.program = spy
    x, t, h, m = inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = unet(x, t, h, m)
    with torch.no_grad():
        ref = unet(x, t, h, m)
    assert seen[0] == (torch.float32, False)  # the circuit ran in fp32 with autocast off
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_autocast_training_step_on_gpu_keeps_the_circuit_in_fp32():
    cfg = tiny(quantum_blocks="all")
    unet = model(quantum_blocks="all").cuda()
    unet.enable_gradient_checkpointing()
    layer = unet.quantum_modules()[0][1].quantum
    program, seen = layer.program, []

    def spy(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        seen.append((x.dtype, torch.is_autocast_enabled("cuda")))
        return program(x, w)

    layer.program = spy
    x, _, h, m = (v.cuda() for v in inputs())
    with torch.autocast("cuda", dtype=torch.float16):
        loss = diffusion_loss(unet, x, h, m, make_train_scheduler(cfg), cfg, generator=torch.Generator())
    loss.backward()
    assert seen[0] == (torch.float32, False)
    assert all(torch.isfinite(p.grad).all() for p in unet.parameters() if p.grad is not None)
    assert layer.weight.grad.abs().sum() > 0
