"""The denoiser: a diffusers ``UNet2DConditionModel`` whose transformer feed-forward layers are Q-FFNs.

The U-Net is built from diffusers blocks (``CrossAttnDownBlock2D``, ``UNetMidBlock2DCrossAttn``,
``CrossAttnUpBlock2D`` hold the SpatialTransformers: 1x1 proj_in, self-attention, cross-attention to the
text, FFN, proj_out, as in Rombach et al. 2022). Afterwards every ``BasicTransformerBlock.ff`` is replaced:
by a ``QuantumFeedForward`` in the chosen blocks, and by the same classical FFN without the quantum branch
elsewhere, so the ``none`` control differs from the quantum model by exactly the quantum branch. Because the
replaced blocks are not what ``UNet2DConditionModel.from_pretrained`` would rebuild, the whole model is its
own config-registered class: ``QLDMUNet.from_pretrained`` rebuilds the Q-FFNs from ``config.json`` and then
loads the safetensors weights.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from torch import nn

from circuits.qffn import qffn_circuit
from qldm.models.config import ModelConfig
from qldm.models.vae import norm_groups
from qldm.qffn import QuantumFeedForward
from qldm.quantum.executor import Executor
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.registry import make_executor

__all__ = [
    "QLDMUNet",
    "FeedForward",
    "build_unet",
    "unet_kwargs",
    "check_circuit_compatible",
    "CircuitMismatchError",
    "CIRCUIT_FIELDS",
]

CIRCUIT_FIELDS = ("n_qubits", "n_qubit_layers", "ancillas", "readout", "quantum_blocks")


class CircuitMismatchError(ValueError):
    """A checkpoint's circuit differs from the requested one."""


class FeedForward(nn.Module):
    """The FFN ``Linear(d, h) -> GELU -> Dropout -> Linear(h, d)``, as in ``QuantumFeedForward``."""

    def __init__(self, d_model: int, *, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(x)  # (B, L, d) -> (B, L, d)


def _quantum_branch_params(d: int, *, n_qubits: int, n_layers: int, ancillas: str, readout: str, ff_mult: int) -> int:
    """Parameters a Q-FFN adds to a classical FFN of width d: pre, circuit weights, post and the gate."""
    spec = qffn_circuit(n_qubits, n_layers=n_layers, ancillas=ancillas, readout=readout)
    h = ff_mult * d
    pre = 2 * d + d * n_qubits + n_qubits  # LayerNorm(d), Linear(d, n)
    post = n_qubits * h + h + h * d + d  # Linear(n, h), Linear(h, d)
    return pre + spec.num_weights + post + 1


class QLDMUNet(ModelMixin, ConfigMixin):
    """Text-conditioned latent U-Net with quantum feed-forward layers.

    Args (all keyword-only and JSON-able, stored in ``config.json``):
        sample_size, in_channels: Latent size and channels.
        block_channels, layers_per_block, attention_head_dim, attention_levels: U-Net levels (see
            ``ModelConfig``).
        cross_attention_dim: Width of the text tokens.
        ff_mult: FFN hidden width multiplier.
        attention_dropout: Dropout on every attention output (diffusers applies it in training mode only).
        quantum_blocks, n_qubits, n_qubit_layers, ancillas, readout, quantum_executor, qffn_branch, gate_init,
        gate_trainable, weight_init, match_params, match_blocks: The Q-FFNs (see ``ModelConfig``).

    Raises:
        ValueError: On a bad option (unknown ``quantum_blocks``, executor, ...).
    """

    _supports_gradient_checkpointing = True
    _keep_in_fp32_modules = ["quantum"]  # circuit angles stay fp32 when loading in half precision

    @register_to_config
    def __init__(
        self,
        *,
        sample_size: int = 16,
        in_channels: int = 4,
        block_channels: tuple[int, ...] = (64, 128),
        layers_per_block: int = 1,
        attention_head_dim: int = 32,
        attention_levels: tuple[int, ...] = (1,),
        cross_attention_dim: int = 64,
        ff_mult: int = 4,
        attention_dropout: float = 0.0,
        quantum_blocks: str = "bottleneck",
        n_qubits: int = 4,
        n_qubit_layers: int = 2,
        ancillas: str = "per-qubit",
        readout: str = "ring",
        quantum_executor: str = "statevector",
        qffn_branch: str = "quantum",
        gate_init: float = 0.1,
        gate_trainable: bool = True,
        weight_init: str = "uniform",
        match_params: bool = False,
        match_blocks: str = "all",
    ) -> None:
        super().__init__()
        if quantum_blocks not in ("none", "bottleneck", "all"):
            raise ValueError(f"quantum_blocks={quantum_blocks!r} is not one of ['none', 'bottleneck', 'all']")
        block_channels, levels = tuple(block_channels), len(block_channels)
        down = ["CrossAttnDownBlock2D" if i in attention_levels else "DownBlock2D" for i in range(levels)]
        up = ["CrossAttnUpBlock2D" if i in attention_levels else "UpBlock2D" for i in reversed(range(levels))]
        self.unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=in_channels,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            mid_block_type="UNetMidBlock2DCrossAttn",
            block_out_channels=block_channels,
            layers_per_block=layers_per_block,
            norm_num_groups=norm_groups(block_channels),
            cross_attention_dim=cross_attention_dim,
            # diffusers' legacy name: this argument is the number of heads per level
            attention_head_dim=tuple(c // attention_head_dim for c in block_channels),
        )
        uses_circuit = quantum_blocks != "none" and qffn_branch != "mlp"
        executor: Executor | str = make_executor(quantum_executor) if uses_circuit else quantum_executor
        for name, block in list(self.unet.named_modules()):  # a snapshot: the loop swaps submodules
            if not isinstance(block, BasicTransformerBlock):
                continue
            d = block.norm3.normalized_shape[0]
            in_mid = name.startswith("mid_block.")
            if quantum_blocks == "all" or (quantum_blocks == "bottleneck" and in_mid):
                block.ff = QuantumFeedForward(
                    d,
                    n_qubits,
                    n_layers=n_qubit_layers,
                    ancillas=ancillas,
                    readout=readout,
                    executor=executor,
                    ff_mult=ff_mult,
                    gate_init=gate_init,
                    weight_init=weight_init,
                    branch=qffn_branch,
                    gate_trainable=gate_trainable,
                )
            else:
                hidden = ff_mult * d
                if match_params and quantum_blocks == "none" and (match_blocks == "all" or in_mid):
                    # widen by as many units as the quantum branch has parameters: each unit costs 2d + 1
                    extra = _quantum_branch_params(
                        d,
                        n_qubits=n_qubits,
                        n_layers=n_qubit_layers,
                        ancillas=ancillas,
                        readout=readout,
                        ff_mult=ff_mult,
                    )
                    hidden += round(extra / (2 * d + 1))
                block.ff = FeedForward(d, hidden=hidden)
            for attn in (block.attn1, block.attn2):
                if attn is not None:
                    attn.to_out[1].p = attention_dropout  # nn.Dropout after the output projection

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
        cfg = self.config
        if sample.dim() != 4 or sample.shape[1] != cfg.in_channels:
            raise ValueError(f"sample must be (B, {cfg.in_channels}, h, w), got {tuple(sample.shape)}")
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
    def quantum_modules(self) -> list[tuple[str, QuantumFeedForward]]:
        """``(name, module)`` of every Q-FFN, names relative to this model (e.g. ``unet.mid_block...ff``)."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, QuantumFeedForward)]

    def set_quantum_executor(self, executor: Executor | str, blocks: str | list[str] = "all") -> list[str]:
        """Swap the executor of some Q-FFNs' circuits (e.g. exact in training, hardware for some steps at
        sampling).

        Args:
            executor: An executor or a registry name (one instance is shared by all chosen blocks).
            blocks: ``"all"``, ``"bottleneck"`` (the mid block's) or a list of names from
                :meth:`quantum_modules`.

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
        """Optimizer groups: ``quantum`` (circuit weights, pre, post), ``gate`` (the lambdas), ``classical``
            (rest).

        Every parameter appears in exactly one group (the original trained them at 5e-4, 1e-6 and 1e-4).
        """
        quantum: list[nn.Parameter] = []
        gate: list[nn.Parameter] = []
        for _, m in self.quantum_modules():
            for part in (m.pre, m.quantum, m.post):
                quantum.extend(part.parameters())
            if isinstance(m.gate, nn.Parameter):
                gate.append(m.gate)
        taken = {id(p) for p in quantum + gate}
        classical = [p for p in self.parameters() if id(p) not in taken]
        return {"classical": classical, "quantum": quantum, "gate": gate}

    def circuit_metadata(self) -> dict[str, Any]:
        """The circuit settings a checkpoint was trained with, plus the block count and circuit
        fingerprint."""
        meta = {k: self.config[k] for k in CIRCUIT_FIELDS}
        meta["qffn_branch"] = self.config.qffn_branch
        mods = self.quantum_modules()
        meta["num_quantum_blocks"] = len(mods)
        layers = [m.quantum for _, m in mods if isinstance(m.quantum, QuantumLayer)]
        meta["fingerprint"] = layers[0].spec.fingerprint() if layers else None
        return meta


def check_circuit_compatible(saved: dict[str, Any], requested: dict[str, Any]) -> None:
    """Refuse a checkpoint whose circuit differs from the requested one.

    Only the fields of ``CIRCUIT_FIELDS`` that ``requested`` sets (not None) are compared.

    Raises:
        CircuitMismatchError: (a ``ValueError``) naming every mismatching field with both values.
    """
    bad = [
        f"{k}: checkpoint has {saved.get(k)!r}, requested {requested[k]!r}"
        for k in CIRCUIT_FIELDS
        if requested.get(k) is not None and saved.get(k) != requested[k]
    ]
    if bad:
        raise CircuitMismatchError("checkpoint circuit differs from the requested one: " + "; ".join(bad))


def unet_kwargs(cfg: ModelConfig, *, sample_size: int | None = None) -> dict[str, Any]:
    """``QLDMUNet`` constructor arguments from a ``ModelConfig`` (latent size from the VAE levels by
    default)."""
    keys = (
        "layers_per_block attention_head_dim ff_mult attention_dropout quantum_blocks n_qubits "
        "n_qubit_layers ancillas readout quantum_executor qffn_branch gate_init gate_trainable weight_init "
        "match_params match_blocks"
    )
    kw: dict[str, Any] = {k: getattr(cfg, k) for k in keys.split()}
    kw.update(
        sample_size=sample_size or cfg.latent_size,
        in_channels=cfg.latent_channels,
        block_channels=tuple(cfg.unet_block_channels),
        attention_levels=tuple(cfg.attention_levels),
        cross_attention_dim=cfg.cross_attention_dim,
    )
    return kw


def build_unet(cfg: ModelConfig, *, sample_size: int | None = None) -> QLDMUNet:
    """Validate ``cfg`` and build the U-Net it describes."""
    cfg.validate()
    return QLDMUNet(**unet_kwargs(cfg, sample_size=sample_size))
