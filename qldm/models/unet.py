"""The denoiser: a diffusers ``UNet2DConditionModel`` whose transformer feed-forward layers are Q-FFNs.

The U-Net is built from diffusers blocks (``CrossAttnDownBlock2D``, ``UNetMidBlock2DCrossAttn``, ``CrossAttnUpBlock2D``
hold the SpatialTransformers: 1x1 proj_in, self-attention, cross-attention to the text, FFN, proj_out, as in Rombach
et al. 2022). Afterwards every ``BasicTransformerBlock.ff`` is replaced: by a ``QuantumFeedForward`` in the chosen
blocks, and by the same classical FFN without the quantum branch elsewhere, so the ``none`` control differs from the
quantum model by exactly the quantum branch. Because the replaced blocks are not what
``UNet2DConditionModel.from_pretrained`` would rebuild, the whole model is its own config-registered class: its
``config.json`` holds the whole ``ModelConfig`` (the Q-FFN config nested), from which ``QLDMUNet.from_pretrained``
rebuilds the Q-FFNs before it loads the safetensors weights. To make another diffusers U-Net hybrid, see
:func:`~qldm.models.hybridize.hybridize_unet`.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from torch import nn

from qldm.models.config import ModelConfig
from qldm.models.hybridize import make_qffn, parameter_groups
from qldm.models.vae import norm_groups
from qldm.qffn import CircuitSlot, QuantumFeedForward
from qldm.quantum.executor import Executor
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.registry import make_executor
from qldm.quanv import QuanvConvIn, Quanvolution

__all__ = ["QLDMUNet", "FeedForward", "build_unet", "check_circuit_compatible", "CircuitMismatchError"]


class CircuitMismatchError(ValueError):
    """A checkpoint's circuit differs from the requested one."""


class FeedForward(nn.Module):
    """The FFN ``Linear(d, h) -> GELU -> Dropout -> Linear(h, d)``, as in ``QuantumFeedForward``."""

    def __init__(self, d_model: int, *, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(x)  # (B, L, d) -> (B, L, d)


def _matching_units(block: BasicTransformerBlock, cfg: ModelConfig) -> int:
    """Hidden units to add to a classical FFN so it has the parameters of the Q-FFN ``cfg`` would put there.

    Counted on a built Q-FFN (its ``pre``, circuit layer, ``post`` and gate beyond the classical FFN), not from a
    formula; each hidden unit costs ``2 d + 1``.
    """
    d = block.norm3.normalized_shape[0]
    with torch.random.fork_rng():  # counting must not move the model's initialisation
        qffn = QuantumFeedForward(d, config=cfg.qffn, ff_mult=cfg.ff_mult)
    classical = qffn.ffn.parameters() if qffn.ffn is not None else ()
    extra = sum(p.numel() for p in qffn.parameters()) - sum(p.numel() for p in classical)
    return round(extra / (2 * d + 1))


class QLDMUNet(ModelMixin, ConfigMixin):
    """Text-conditioned latent U-Net with quantum feed-forward layers.

    Args (keyword-only and JSON-able, stored in ``config.json``):
        model: ``ModelConfig.to_dict()``: the U-Net levels, the Q-FFN placement and the nested Q-FFN config
            are read from it (latent channels, cross-attention width = ``text_dim``, ...). None = the defaults.
        sample_size: Latent side; None = ``ModelConfig.latent_size``.

    Attributes:
        model_config: The parsed :class:`ModelConfig`.

    Raises:
        ValueError: On an unknown or invalid model field (see ``ModelConfig.validate``).
    """

    _supports_gradient_checkpointing = True
    _keep_in_fp32_modules = ["quantum"]  # circuit angles stay fp32 when loading in half precision

    @register_to_config
    def __init__(self, *, model: dict[str, Any] | None = None, sample_size: int | None = None) -> None:
        super().__init__()
        cfg = ModelConfig.from_dict(model or {}).validate()
        sample_size = sample_size or cfg.latent_size
        # store the complete config (defaults filled in), so config.json alone rebuilds this model
        self.register_to_config(model=cfg.to_dict(), sample_size=sample_size)
        self.model_config = cfg
        block_channels, levels = tuple(cfg.unet_block_channels), len(cfg.unet_block_channels)
        down = ["CrossAttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D" for i in range(levels)]
        up = ["CrossAttnUpBlock2D" if i in cfg.attention_levels else "UpBlock2D" for i in reversed(range(levels))]
        self.unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=cfg.latent_channels,
            out_channels=cfg.latent_channels,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            mid_block_type="UNetMidBlock2DCrossAttn",
            block_out_channels=block_channels,
            layers_per_block=cfg.layers_per_block,
            norm_num_groups=norm_groups(block_channels),
            cross_attention_dim=cfg.cross_attention_dim,
            # diffusers' legacy name: this argument is the number of heads per level
            attention_head_dim=tuple(c // cfg.attention_head_dim for c in block_channels),
        )
        executor = cfg.qffn.make_executor() if cfg.uses_circuit else None  # one instance shared by all slots
        quantum = set(cfg.quantum_block_names())
        blocks = [(n, m) for n, m in self.unet.named_modules() if isinstance(m, BasicTransformerBlock)]
        if [n for n, _ in blocks] != cfg.transformer_blocks():  # the names the config validated against
            raise RuntimeError(f"diffusers named the transformer blocks {[n for n, _ in blocks]}")
        for name, block in blocks:
            if name in quantum:
                block.ff = make_qffn(block, qffn=cfg.qffn, ff_mult=cfg.ff_mult, executor=executor, keep_ffn=False)
            else:
                hidden = cfg.ff_mult * block.norm3.normalized_shape[0]
                if cfg.match_params and (cfg.match_blocks == "all" or name.startswith("mid_block.")):
                    hidden += _matching_units(block, cfg)
                block.ff = FeedForward(block.norm3.normalized_shape[0], hidden=hidden)
            for attn in (block.attn1, block.attn2):
                if attn is not None:
                    attn.to_out[1].p = cfg.attention_dropout  # nn.Dropout after the output projection
        if cfg.quanv_patch:
            quanv = Quanvolution(block_channels[0], config=cfg.qffn, patch=cfg.quanv_patch, executor=executor)
            self.unet.conv_in = QuanvConvIn(self.unet.conv_in, quanv)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int | float,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise (or velocity) of a noisy latent.

        Args:
            sample: Noisy latents ``(B, C, h, w)``.
            timestep: Scalar or ``(B,)`` diffusion steps.
            encoder_hidden_states: Text tokens ``(B, L, D)``.
            encoder_attention_mask: ``(B, L)``, 1 for real tokens, 0 for padding.

        Returns:
            ``(B, C, h, w)``.

        Raises:
            ValueError: On mismatching shapes.
        """
        cfg = self.model_config
        if sample.dim() != 4 or sample.shape[1] != cfg.latent_channels:
            raise ValueError(f"sample must be (B, {cfg.latent_channels}, h, w), got {tuple(sample.shape)}")
        if encoder_hidden_states.dim() != 3 or encoder_hidden_states.shape[-1] != cfg.cross_attention_dim:
            raise ValueError(
                f"encoder_hidden_states must be (B, L, {cfg.cross_attention_dim}), got "
                f"{tuple(encoder_hidden_states.shape)}"
            )
        if encoder_attention_mask is not None and encoder_attention_mask.shape != encoder_hidden_states.shape[:2]:
            raise ValueError(
                f"encoder_attention_mask {tuple(encoder_attention_mask.shape)} does not match the text "
                f"{tuple(encoder_hidden_states.shape[:2])}"
            )
        # diffusers turns the (B, L) keep-mask into an additive -10000 bias on the padded text keys
        return self.unet(
            sample,  # (B, C, h, w)
            timestep,  # () or (B,)
            encoder_hidden_states=encoder_hidden_states,  # (B, L, D)
            encoder_attention_mask=encoder_attention_mask,  # (B, L)
            return_dict=False,
        )[0]  # (B, C, h, w)

    # ----------------------------------------------------------------------------------------- quantum parts
    def quantum_modules(self) -> list[tuple[str, CircuitSlot]]:
        """``(name, module)`` of every circuit slot (Q-FFNs and the quanvolution), names relative to this model
        (e.g. ``unet.mid_block...ff``, ``unet.conv_in.quanv``)."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, CircuitSlot)]

    def set_quantum_executor(self, executor: Executor | str, blocks: str | list[str] = "all") -> list[str]:
        """Swap the executor of some Q-FFNs' circuits (e.g. exact in training, hardware for some sampling steps).

        Args:
            executor: An executor, or a registry name (built with default options); one instance is shared by all chosen
                blocks.
            blocks: ``"all"``, ``"bottleneck"`` (the mid block's) or a list of names from :meth:`quantum_modules`.

        Returns:
            Names of the modules whose executor changed (the ``mlp`` control has no circuit and is skipped).

        Raises:
            ValueError: On an unknown block name or selector.
        """
        mods = dict(self.quantum_modules())
        if blocks == "all":
            chosen = list(mods)
        elif blocks == "bottleneck":
            chosen = [n for n in mods if n.startswith("unet.mid_block.")]
        elif isinstance(blocks, (list, tuple)):
            unknown = [b for b in blocks if b not in mods]
            if unknown:
                raise ValueError(f"unknown quantum block(s) {unknown}; this model has {list(mods)}")
            chosen = list(blocks)
        else:
            raise ValueError(f"blocks must be 'all', 'bottleneck' or a list of names, got {blocks!r}")
        if isinstance(executor, str):
            executor = make_executor(executor)
        changed = []
        for name in chosen:
            layer = mods[name].quantum
            if isinstance(layer, QuantumLayer):
                layer.set_executor(executor)
                changed.append(name)
        return changed

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Optimizer groups: ``quantum`` (circuit weights, pre, post), ``gate`` (the lambdas), ``classical`` (rest).

        Every parameter appears in exactly one group (the original trained them at 5e-4, 1e-6 and 1e-4).
        """
        return parameter_groups(self)

    def circuit_metadata(self) -> dict[str, Any]:
        """``ModelConfig.circuit_metadata`` with the fingerprint of the circuit actually built and the block count."""
        meta = self.model_config.circuit_metadata()
        mods = self.quantum_modules()
        layers = [m.quantum for _, m in mods if isinstance(m.quantum, QuantumLayer)]
        meta["fingerprint"] = layers[0].spec.fingerprint() if layers else None
        meta["num_quantum_blocks"] = len(mods)
        return meta

    def executor_descriptions(self) -> dict[str, dict]:
        """``executor.describe()`` of every Q-FFN circuit, keyed by module name (for checkpoints)."""
        return {
            n: m.quantum.executor.describe() for n, m in self.quantum_modules() if isinstance(m.quantum, QuantumLayer)
        }


def check_circuit_compatible(saved: dict[str, Any], requested: dict[str, Any]) -> None:
    """Refuse a checkpoint whose circuit differs from the requested one.

    Both sides are ``circuit_metadata()`` dicts (or a part of one). Every key that ``requested`` sets (not None)
    is compared, so the spec fingerprint decides, and the builder arguments name what differs.

    Raises:
        CircuitMismatchError: (a ``ValueError``) naming every mismatching key with both values.
    """
    bad = [
        f"{k}: checkpoint has {saved.get(k)!r}, requested {v!r}"
        for k, v in requested.items()
        if v is not None and saved.get(k) != v
    ]
    if bad:
        raise CircuitMismatchError("checkpoint circuit differs from the requested one: " + "; ".join(bad))


def build_unet(cfg: ModelConfig, *, sample_size: int | None = None) -> QLDMUNet:
    """Validate ``cfg`` and build the U-Net it describes (latent size from the VAE levels by default)."""
    return QLDMUNet(model=cfg.validate().to_dict(), sample_size=sample_size)
