"""The text encoder: a tokenizer and a transformers ``T5EncoderModel``, with fixed-length padding and masks.

One object encodes prompts for training and for sampling, and gives the empty-caption embedding used both for
caption dropout (training) and for the unconditional branch of classifier-free guidance (sampling), so the two
cannot drift apart (the original used "" in training and a negative prompt at sampling). Prompts are always
padded to ``max_length`` and come with an attention mask (the original padded dynamically in training, to 77
at sampling, and passed no mask).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from transformers import AutoTokenizer, ByT5Tokenizer, PreTrainedTokenizerBase, T5Config, T5EncoderModel

from qldm.models.config import ModelConfig

__all__ = ["TextEncoder", "build_text_encoder"]

_TINY_SEED = 0  # the tiny encoder's weights are a fixed function of its config, whatever the global RNG state
_META = "qldm_text_encoder.json"


class TextEncoder(ModelMixin, ConfigMixin):
    """Tokenizer + T5 encoder as one module that a ``DiffusionPipeline`` can save and load.

    Args:
        model: The T5 encoder.
        tokenizer: Its tokenizer (``ByT5Tokenizer`` for the tiny default: bytes, no vocabulary files).
        max_length: Every prompt is padded / truncated to this many tokens.
        trainable: If False (default), the encoder's weights are frozen, it stays in eval mode even when the
            module is put in train mode, and ``encode`` runs without building a graph.

    Attributes:
        hidden_size: Width D of the returned token embeddings.
    """

    config_name = _META

    def __init__(
        self,
        model: T5EncoderModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.trainable = bool(trainable)
        self.register_to_config(max_length=self.max_length, trainable=self.trainable)
        self.model.requires_grad_(self.trainable)
        self.train(False)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.d_model)

    def train(self, mode: bool = True) -> TextEncoder:
        """Switch mode; a frozen encoder stays in eval mode (no dropout in features that are never trained)."""
        super().train(mode)
        if not self.trainable:
            self.model.eval()
        return self

    def encode(self, prompts: list[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> ``(hidden (B, L, D), attention_mask (B, L) long)`` with ``L = max_length``.

        Raises:
            ValueError: If ``prompts`` is empty or holds something other than strings.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
        )
        ids = tokens["input_ids"].to(self.model.device)  # (B, L)
        mask = tokens["attention_mask"].to(self.model.device).long()  # (B, L)  1 = real token (incl. EOS)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, D)
        return hidden, mask

    def empty(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The empty caption ``""`` encoded, repeated: ``(hidden (batch, L, D), mask (batch, L))``.

        The same tensors serve caption dropout in training and the unconditional branch of guidance in
        sampling.
        """
        hidden, mask = self.encode([""])  # (1, L, D), (1, L)
        return hidden.expand(batch, -1, -1).contiguous(), mask.expand(batch, -1).contiguous()

    # ------------------------------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Write the T5 weights (safetensors) and config, the tokenizer files and ``qldm_text_encoder.json``.

        Extra keyword arguments (passed by ``DiffusionPipeline.save_pretrained``) are ignored.
        """
        os.makedirs(save_directory, exist_ok=True)
        self.model.save_pretrained(save_directory)
        self.tokenizer.save_pretrained(save_directory)
        self.save_config(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> TextEncoder:
        """Load what :meth:`save_pretrained` wrote (``torch_dtype``/``dtype`` are honoured, other loader
        options of ``DiffusionPipeline.from_pretrained`` are ignored).

        Raises:
            ValueError: If the folder has no ``qldm_text_encoder.json``.
        """
        path = Path(pretrained_model_name_or_path)
        meta_file = path / _META
        if not meta_file.is_file():
            raise ValueError(f"{path} is not a saved TextEncoder (no {_META})")
        meta = json.loads(meta_file.read_text())
        model = T5EncoderModel.from_pretrained(path)
        dtype = kwargs.get("torch_dtype") or kwargs.get("dtype")
        if isinstance(dtype, torch.dtype):
            model = model.to(dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model, tokenizer, max_length=meta["max_length"], trainable=meta.get("trainable", False))


def build_text_encoder(cfg: ModelConfig) -> TextEncoder:
    """The tiny T5 (seeded, built from config) or a pretrained one from a path / hub id (always frozen).

    Raises:
        ValueError: If a pretrained encoder's hidden size differs from ``cfg.text_dim`` (the U-Net's
            cross-attention width).
    """
    if cfg.text_encoder == "tiny":
        tokenizer = ByT5Tokenizer()
        t5 = T5Config(
            vocab_size=len(tokenizer),
            d_model=cfg.text_dim,
            d_kv=cfg.text_dim // cfg.text_heads,
            d_ff=4 * cfg.text_dim,
            num_layers=cfg.text_layers,
            num_heads=cfg.text_heads,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
            is_encoder_decoder=False,
            use_cache=False,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_TINY_SEED)
            model = T5EncoderModel(t5)
        return TextEncoder(model, tokenizer, max_length=cfg.max_text_length, trainable=cfg.train_text_encoder)
    tokenizer = AutoTokenizer.from_pretrained(cfg.text_encoder)
    model = T5EncoderModel.from_pretrained(cfg.text_encoder)
    if model.config.d_model != cfg.text_dim:
        raise ValueError(
            f"text encoder {cfg.text_encoder!r} has hidden size {model.config.d_model}, but text_dim="
            f"{cfg.text_dim}; set text_dim={model.config.d_model}"
        )
    return TextEncoder(model, tokenizer, max_length=cfg.max_text_length, trainable=False)
