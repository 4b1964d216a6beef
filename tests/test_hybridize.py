"""``hybridize_unet``: Q-FFN layers put into a plain diffusers ``UNet2DConditionModel``."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import FeedForward as DiffusersFeedForward

from qldm.models import QFFNConfig, hybridize_unet, parameter_groups, transformer_block_names
from qldm.qffn import QuantumFeedForward
from qldm.quantum.layer import QuantumLayer


def plain_unet(seed: int = 0) -> UNet2DConditionModel:
    """A small Stable-Diffusion-shaped U-Net: cross-attention in both levels and the middle, GEGLU FFNs."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=12,
        attention_head_dim=8,
    ).eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, 8, 8, generator=g), torch.tensor([10, 500]), torch.randn(2, 5, 12, generator=g)


def run(unet: UNet2DConditionModel) -> torch.Tensor:
    x, t, text = inputs()
    return unet(x, t, encoder_hidden_states=text).sample  # (2, 4, 8, 8)


QFFN = QFFNConfig(n_qubits=2, n_layers=1)


def test_gate_zero_keeps_the_pretrained_output_and_training_reaches_the_circuit():
    unet = plain_unet()
    with torch.no_grad():
        ref = run(unet)
    old_ff = unet.mid_block.attentions[0].transformer_blocks[0].ff
    names = hybridize_unet(unet, qffn=QFFNConfig(n_qubits=2, n_layers=1, gate_init=0.0))
    assert names == ["mid_block.attentions.0.transformer_blocks.0.ff"]
    new = unet.mid_block.attentions[0].transformer_blocks[0].ff
    assert isinstance(new, QuantumFeedForward) and new.ffn is old_ff  # the pretrained FFN is the classical part
    assert isinstance(old_ff, DiffusersFeedForward)
    with torch.no_grad():
        assert torch.equal(run(unet), ref)  # lambda = 0: exactly the original model

    unet.train()
    run(unet).square().mean().backward()
    assert new.gate.grad is not None and new.gate.grad.abs() > 0
    with torch.no_grad():
        new.gate.fill_(0.5)
    unet.zero_grad()
    run(unet).square().mean().backward()
    assert isinstance(new.quantum, QuantumLayer) and new.quantum.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert not torch.equal(run(unet.eval()), ref)


def test_block_choice_and_errors():
    all_names = transformer_block_names(plain_unet())
    assert len(all_names) == 7  # 2 down + 1 mid + 4 up (layers_per_block + 1 per up level)
    unet = plain_unet()
    assert len(hybridize_unet(unet, qffn=QFFN, blocks="all")) == 7
    unet = plain_unet()
    chosen = hybridize_unet(unet, qffn=QFFN, blocks=["up_blocks.1", "down_blocks.0.attentions.0"])
    assert chosen == [f"{n}.ff" for n in all_names if n.startswith(("up_blocks.1.", "down_blocks.0."))]
    assert len(chosen) == 3
    with pytest.raises(ValueError, match="already have a Q-FFN"):
        hybridize_unet(unet, qffn=QFFN, blocks=["up_blocks.1"])
    with pytest.raises(ValueError, match=r"\['up_blocks.7'\] match no transformer block"):
        hybridize_unet(plain_unet(), qffn=QFFN, blocks=["up_blocks.7"])
    with pytest.raises(ValueError, match=r"\['middle'\] match no transformer block"):
        hybridize_unet(plain_unet(), qffn=QFFN, blocks="middle")  # a string is a comma-separated name list
    with pytest.raises(ValueError, match="blocks must be"):
        hybridize_unet(plain_unet(), qffn=QFFN, blocks=[])
    with pytest.raises(ValueError, match="selects no transformer block"):
        hybridize_unet(plain_unet(), qffn=QFFN, blocks="none")
    names = hybridize_unet(plain_unet(), qffn=QFFN, blocks="mid_block, up_blocks.0")
    assert names == [
        "up_blocks.0.attentions.0.transformer_blocks.0.ff",
        "up_blocks.0.attentions.1.transformer_blocks.0.ff",
        "mid_block.attentions.0.transformer_blocks.0.ff",
    ]
    with pytest.raises(ValueError, match="no diffusers BasicTransformerBlock"):
        hybridize_unet(torch.nn.Linear(2, 2), qffn=QFFN)
    fresh = plain_unet()
    hybridize_unet(fresh, qffn=QFFN, keep_ffn=False, ff_mult=2)
    ff = fresh.mid_block.attentions[0].transformer_blocks[0].ff
    assert isinstance(ff.ffn, torch.nn.Sequential) and ff.ffn[0].out_features == 2 * 32


def test_one_shared_executor_parameter_groups_and_state_dict_round_trip(tmp_path):
    unet = plain_unet()
    hybridize_unet(unet, qffn=QFFN, blocks="all")
    layers = [m.quantum for m in unet.modules() if isinstance(m, QuantumFeedForward)]
    assert len({id(layer.executor) for layer in layers}) == 1
    groups = parameter_groups(unet)
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) == len(list(unet.parameters()))
    assert len(groups["gate"]) == 7 and all(p.numel() == 1 for p in groups["gate"])

    with torch.no_grad():
        for p in groups["quantum"] + groups["gate"]:
            p.add_(0.1)  # trained-looking values
        ref = run(unet)
    torch.save(unet.state_dict(), tmp_path / "hybrid.pt")
    again = plain_unet(seed=5)  # any base weights: the state dict replaces them
    hybridize_unet(again, qffn=QFFN, blocks="all")
    again.load_state_dict(torch.load(tmp_path / "hybrid.pt"))
    with torch.no_grad():
        assert torch.equal(run(again.eval()), ref)
