"""The ``paper`` preset's shape at micro width: all 11 transformer blocks carry a 16-qubit Q-FFN (32 wires, exact
tensor network), and one optimisation step reaches every circuit and every gate."""

from __future__ import annotations

import pytest
import torch

from qldm.config import apply_overrides, make_preset
from qldm.qffn import QuantumFeedForward

# paper's structure (4 levels, 2 layers per block, attention at levels 1 and 2 plus the mid block, 128 px, VAE x8,
# Q-FFN everywhere at 16 qubits) with the widths cut down
MICRO_PAPER = [
    "model.vae_block_channels=4,4,4,4",
    "model.unet_block_channels=8,16,16,16",
    "model.attention_head_dim=8",
    "model.text_dim=16",
    "model.text_heads=2",
    "model.text_layers=1",
    "model.max_text_length=8",
    "train.batch_size=1",
    "train.gradient_checkpointing=false",
]


@pytest.mark.slow
def test_paper_shaped_model_has_11_sixteen_qubit_blocks_and_takes_one_step():
    from qldm.models import diffusion_loss, make_train_scheduler
    from qldm.train.components import build_unet
    from qldm.train.loop import build_optimizer

    cfg = apply_overrides(make_preset("paper"), MICRO_PAPER).validate()
    torch.manual_seed(0)
    unet = build_unet(cfg).train()
    blocks = [m for m in unet.modules() if isinstance(m, QuantumFeedForward)]
    assert len(blocks) == 11
    assert all(b.quantum.spec.num_qubits == 32 and b.quantum.spec.num_inputs == 16 for b in blocks)
    assert {type(b.quantum.executor).__name__ for b in blocks} == {"RingExecutor"}
    m = cfg.model
    latents = torch.randn(1, m.latent_channels, m.latent_size, m.latent_size)  # (1, 4, 16, 16)
    hidden = torch.randn(1, m.max_text_length, m.cross_attention_dim)
    opt = build_optimizer(unet, cfg)
    before = [b.quantum.weight.detach().clone() for b in blocks]
    loss = diffusion_loss(unet, latents, hidden, None, make_train_scheduler(m), m, generator=torch.Generator())
    loss.backward()
    for b in blocks:
        assert b.quantum.weight.grad is not None and b.quantum.weight.grad.abs().sum() > 0
        assert b.gate.grad is not None and torch.isfinite(b.gate.grad)
    opt.step()
    assert all(not torch.equal(w0, b.quantum.weight) for w0, b in zip(before, blocks))
    assert torch.isfinite(loss)
