"""``ModelConfig``: every architectural and diffusion choice of the latent diffusion model, typed and checked.

The defaults are the ``tiny`` CPU preset's model (32 px images, a small VAE and T5 built from config, 4 data qubits
in the U-Net bottleneck). The Q-FFN settings are one nested :class:`~qldm.qffn.QFFNConfig` (``model.qffn.*``),
passed whole to every ``QuantumFeedForward``. Run presets (``qldm/presets.py``) override fields;
:meth:`ModelConfig.validate` gives one clear ``ValueError`` per bad setting before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from qldm.config_io import bounded, check_fields, from_dict, to_dict
from qldm.qffn import QFFNConfig

__all__ = ["ModelConfig", "QFFNConfig"]


@dataclass(frozen=True)
class ModelConfig:
    """The model: VAE, text encoder, U-Net with Q-FFN blocks, and the diffusion process.

    Attributes (groups):
        image_size, image_channels: Pixel space (square images).
        vae: ``"tiny"`` (an ``AutoencoderKL`` built from ``vae_block_channels``) or a local path / hub id of a
            pretrained one. For a pretrained VAE, ``vae_block_channels`` must have as many entries as its levels (it
            fixes the downsampling factor) and ``latent_channels`` must match; ``build_vae`` checks both.
        vae_finetune: Default False: a pretrained ``vae`` stays frozen (stage 1 only measures ``latent_scale``).
            True fine-tunes it on the data in stage 1 first; the ``tiny`` VAE is always trained.
        latent_scale: Multiplier that brings latents to unit standard deviation, measured on the data with
            ``measure_latent_scale`` (Stable Diffusion's 0.18215 was found the same way) and stored here.
        text_encoder: ``"tiny"`` (a small ``T5EncoderModel`` from ``T5Config`` with the file-free ByT5 tokenizer),
            ``"minilm"`` (the pretrained all-MiniLM-L6-v2 from the ``minilm`` extra, ``text_dim=384``) or a path / hub
            id (e.g. ``google-t5/t5-small``), loaded with ``AutoTokenizer``, whose tokenizer files must be present.
            ``text_dim`` must equal the encoder's hidden size; it is the U-Net's cross-attention width.
        train_text_encoder: Default False. The tiny encoder is then a fixed, seeded random feature map of the caption
            bytes (saved with the pipeline); the U-Net's cross-attention learns to read it, and captions can be encoded
            once and cached. Pretrained encoders are always frozen (``validate`` refuses True).
        unet_block_channels, layers_per_block, attention_head_dim, attention_levels: U-Net levels, residual layers per
            level, channels per attention head, and which levels (0 = full latent resolution) carry cross-attention
            transformer blocks. The mid block always carries one.
        quantum_blocks: Where ``QuantumFeedForward`` replaces the FFN: ``"none"`` (classical control), ``"bottleneck"``
            (mid block only, the original README's claim), ``"all"`` (every transformer block, what the original code
            does), or a comma-separated list of block names or name prefixes (``"down_blocks.1,mid_block"``; see
            :meth:`transformer_blocks` for this U-Net's names; the 16 x 16 level needs ``attention_levels`` to
            include 0).
        quanv_patch: 0 (off) or the patch side k of a residual quanvolution after ``conv_in`` on the first encoder
            level (:class:`~qldm.quanv.Quanvolution`, QCU-Net's place): k x k patches -> the ``qffn`` circuit ->
            channels. It must divide the latent side.
        qffn: The Q-FFN, its circuit and its executor (see :class:`~qldm.qffn.QFFNConfig`).
        match_params, match_blocks: With ``quantum_blocks="none"``, widen the FFNs of the ``match_blocks``
            ("bottleneck"/"all") blocks so the model has the quantum model's parameter count.
        prediction_type, num_train_timesteps, beta_schedule, beta_start, beta_end: The DDPM process. The default is the
            original's linear 1e-4..0.02 over 1000 steps (Ho et al. 2020), whose last step is nearly pure noise, so
            samplers starting from N(0, I) match training.
        cfg_dropout: Probability of replacing a caption by the empty one, per sample (classifier-free guidance, Ho &
            Salimans 2022).
        attention_dropout: Dropout on the attention outputs of the transformer blocks (training mode only).
    """

    # pixels and VAE
    image_size: int = bounded(32, ge=1)
    image_channels: int = bounded(3, ge=1)
    vae: str = "tiny"
    vae_finetune: bool = False
    vae_block_channels: tuple[int, ...] = bounded((32, 64), ge=1)
    vae_layers_per_block: int = bounded(1, ge=1)
    latent_channels: int = bounded(4, ge=1)
    latent_scale: float = bounded(1.0, gt=0)
    # text
    text_encoder: str = "tiny"
    text_dim: int = bounded(64, ge=1)
    text_layers: int = bounded(2, ge=1)
    text_heads: int = bounded(4, ge=1)
    max_text_length: int = bounded(64, ge=1)
    train_text_encoder: bool = False
    # U-Net
    unet_block_channels: tuple[int, ...] = bounded((64, 128), ge=1)
    layers_per_block: int = bounded(1, ge=1)
    attention_head_dim: int = bounded(32, ge=1)
    attention_levels: tuple[int, ...] = bounded((1,), ge=0)
    ff_mult: int = bounded(4, ge=1)
    attention_dropout: float = bounded(0.0, ge=0, lt=1)
    # quantum feed-forward: where it sits, the classical control, and the Q-FFN itself
    quantum_blocks: str = "bottleneck"
    quanv_patch: int = bounded(0, ge=0)
    match_params: bool = False
    match_blocks: Literal["bottleneck", "all"] = "all"
    qffn: QFFNConfig = field(default_factory=QFFNConfig)
    # diffusion
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    num_train_timesteps: int = bounded(1000, ge=1)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    beta_start: float = bounded(1e-4, gt=0, lt=1)
    beta_end: float = bounded(0.02, gt=0, lt=1)
    cfg_dropout: float = bounded(0.1, ge=0, le=1)

    # ----------------------------------------------------------------------------------------------- derived
    @property
    def cross_attention_dim(self) -> int:
        """Width of the text tokens the U-Net attends to (= ``text_dim``)."""
        return self.text_dim

    @property
    def vae_scale_factor(self) -> int:
        """Pixel-to-latent downsampling: ``AutoencoderKL`` halves the size at every level but the last."""
        return 2 ** (len(self.vae_block_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae_scale_factor

    @property
    def has_slots(self) -> bool:
        """Whether the U-Net has a place for the circuit (Q-FFN blocks or a quanvolution), filled by it or a twin."""
        return self.quantum_blocks != "none" or self.quanv_patch > 0

    @property
    def uses_circuit(self) -> bool:
        """Whether the U-Net runs a circuit: some circuit slot, not filled by a twin."""
        return self.has_slots and self.qffn.uses_circuit

    def transformer_blocks(self) -> list[str]:
        """Names of the U-Net's transformer blocks, in model order, as diffusers names them (no model is built)."""
        levels, per = len(self.unet_block_channels), self.layers_per_block
        attn = [i for i in range(levels) if i in self.attention_levels]
        down = [f"down_blocks.{i}.attentions.{j}" for i in attn for j in range(per)]
        mid = ["mid_block.attentions.0"]
        up = [
            f"up_blocks.{k}.attentions.{j}"
            for k in range(levels)
            if levels - 1 - k in self.attention_levels
            for j in range(per + 1)
        ]
        return [f"{name}.transformer_blocks.0" for name in down + up + mid]  # diffusers registers mid_block last

    def quantum_block_names(self) -> list[str]:
        """The transformer blocks whose FFN is a Q-FFN (``quantum_blocks`` resolved).

        Raises:
            ValueError: If an entry of ``quantum_blocks`` names no transformer block of this U-Net.
        """
        from qldm.models.blocks import select_blocks

        try:
            return select_blocks(self.transformer_blocks(), self.quantum_blocks)
        except ValueError as err:
            raise ValueError(f"model.quantum_blocks={self.quantum_blocks!r}: {err}") from None

    def circuit_metadata(self) -> dict[str, Any]:
        """What makes a checkpoint's circuit compatible (see ``check_circuit_compatible``).

        The circuit builder's own arguments (``spec.metadata``, for readable messages), the block placement, and
        the spec's fingerprint, which decides (None when no circuit runs).
        """
        spec = self.qffn.spec()
        fingerprint = spec.fingerprint() if self.uses_circuit else None
        meta = {"quantum_blocks": self.quantum_blocks, **spec.metadata, "fingerprint": fingerprint}
        meta.update(mode=self.qffn.mode, quanv_patch=self.quanv_patch)
        return meta

    # ----------------------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field, ``qffn`` nested (JSON turns tuples into lists; ``from_dict`` restores)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: On unknown keys (named in the message), also inside ``qffn``.
        """
        return from_dict(cls, data, where="model")

    # -------------------------------------------------------------------------------------------- validation
    def validate(self) -> ModelConfig:
        """Check every field; returns ``self`` so that ``ModelConfig(...).validate()`` chains.

        Raises:
            ValueError: Naming the first bad field, its value and what would be valid.
        """
        check_fields(self, prefix="model.")  # choices, types (floats finite) and the declared ranges
        for name in ("vae_block_channels", "unet_block_channels"):
            if not getattr(self, name):
                raise ValueError(f"model.{name} must be a non-empty tuple of positive integers, got ()")
        factor = self.vae_scale_factor * 2 ** (len(self.unet_block_channels) - 1)
        if self.image_size % factor:
            raise ValueError(
                f"image_size={self.image_size} is not divisible by the total downsampling {factor} "
                f"(VAE x{self.vae_scale_factor}, U-Net x{factor // self.vae_scale_factor}); "
                f"use a multiple of {factor} or fewer levels"
            )
        levels = len(self.unet_block_channels)
        if any(not 0 <= lv < levels for lv in self.attention_levels):
            raise ValueError(f"attention_levels={self.attention_levels} must lie in 0..{levels - 1}")
        for ch in self.unet_block_channels:
            if ch % self.attention_head_dim:
                raise ValueError(
                    f"unet_block_channels entry {ch} is not divisible by attention_head_dim={self.attention_head_dim}"
                )
        if self.vae_finetune and self.vae == "tiny":
            raise ValueError(
                "vae_finetune=True needs a pretrained vae (a path or hub id); the tiny VAE is always trained"
            )
        if self.text_encoder == "minilm" and self.text_dim != 384:
            raise ValueError(
                f"text_encoder='minilm' gives 384-wide tokens, but text_dim={self.text_dim}; set text_dim=384"
            )
        if self.text_dim % self.text_heads:
            raise ValueError(f"text_dim={self.text_dim} is not divisible by text_heads={self.text_heads}")
        if self.train_text_encoder and self.text_encoder != "tiny":
            raise ValueError(
                f"train_text_encoder=True with the pretrained encoder {self.text_encoder!r}: "
                "pretrained encoders are frozen; use text_encoder='tiny' to train one jointly"
            )
        if not self.beta_start < self.beta_end:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")
        if self.match_params and self.has_slots:
            raise ValueError(
                "match_params=True only applies to the classical control (quantum_blocks='none', quanv_patch=0)"
            )
        self.quantum_block_names()  # every named block exists
        if self.quanv_patch and self.latent_size % self.quanv_patch:
            raise ValueError(
                f"model.quanv_patch={self.quanv_patch} does not divide the {self.latent_size}x{self.latent_size} "
                f"latent; use a divisor of {self.latent_size}"
            )
        if not self.has_slots and (self.qffn.branch != "quantum" or self.qffn.mode != "parallel"):
            raise ValueError(
                f"model.qffn.branch={self.qffn.branch!r} / mode={self.qffn.mode!r} asked for, but the model has no "
                "circuit to replace: set model.quantum_blocks or model.quanv_patch"
            )
        # the executor's own check_spec decides whether it can run the circuit (width limits live there)
        self.qffn.validate(check_executor=self.uses_circuit)
        return self
