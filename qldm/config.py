"""Typed run configuration: frozen dataclasses, a preset registry, checked ``--set key=value`` overrides, JSON
I/O.

A run is fully described by one :class:`RunConfig` (model, data, training, sampling). It is saved as JSON next
to every checkpoint and exported pipeline, so a result can always be traced to the exact configuration that
made it. Presets are built by functions (no mutable module state); overrides are parsed against the dataclass
field types, never evaluated as code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qldm.models.config import ModelConfig

__all__ = [
    "DataConfig",
    "TrainConfig",
    "SampleConfig",
    "RunConfig",
    "PRESETS",
    "make_preset",
    "apply_overrides",
    "save_config",
    "load_config",
    "config_to_dict",
    "config_from_dict",
]


@dataclass(frozen=True)
class DataConfig:
    """Where images and captions come from.

    Attributes:
        source: ``"procedural"`` (built-in faces), ``"anime-faces"`` (../shared/data/anime-faces-64) or
            an image folder.
        image_size: Side in pixels after center-crop and resize.
        limit: Use at most this many images (procedural: how many to draw); None = all (procedural: 2000).
        seed: Seed of the procedural generator / subset choice.
        captions: Caption mode passed to ``build_dataset`` (``"auto"`` = the source's own captioner).
        holdout: Hair colour/style combinations never shown in training, as ``"colour/style"`` strings
            (procedural data only). The demo prompts them to test compositional generalisation.
    """

    source: str = "procedural"
    image_size: int = 32
    limit: int | None = None
    seed: int = 0
    captions: str = "auto"
    holdout: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, EMA, checkpointing and the stage-1 VAE settings.

    Learning rates follow the original's three AdamW groups (classical / quantum / gate lambda); weight decay
    is never applied to lambda. ``max_steps`` (if set) stops training early, which the tests and demo use.
    """

    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 32
    lr_classical: float = 1e-4
    lr_quantum: float = 5e-4
    lr_gate: float = 1e-6
    weight_decay: float = 1e-2
    warmup_steps: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    seed: int = 0
    sample_every: int = 1
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 0
    vae_epochs: int = 5
    vae_lr: float = 1e-3
    vae_batch_size: int = 32
    vae_kl_weight: float = 1e-6
    vae_pretrained: str = ""
    vae_crop: int = 0  # train the (fully convolutional) VAE on random crops of this side; 0 = whole images


@dataclass(frozen=True)
class SampleConfig:
    """Sampling settings for the per-epoch grids and ``qldm sample`` defaults."""

    steps: int = 25
    guidance: float = 3.0
    scheduler: Literal["ddim", "dpm++", "ddpm"] = "ddim"
    prompts: tuple[str, ...] = (
        "anime face, blue hair, long hair",
        "anime face, red hair, short hair",
        "anime face, blonde hair, twintails",
        "anime face, green hair, long hair",
    )
    seeds: tuple[int, ...] = (0, 1)  # one row of len(seeds) images per prompt; seed s drives a whole row


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run. ``name`` is the preset it started from."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def validate(self) -> RunConfig:
        """Check cross-field constraints; return self. Raises ValueError naming the first problem."""
        validate = getattr(self.model, "validate", None)
        if callable(validate):
            validate()
        if self.model.image_size != self.data.image_size:
            raise ValueError(
                f"model.image_size={self.model.image_size} differs from data.image_size={self.data.image_size}"
            )
        t = self.train
        for key in (
            "epochs",
            "batch_size",
            "vae_batch_size",
            "sample_every",
            "log_every",
            "keep_checkpoints",
        ):
            if getattr(t, key) < 1:
                raise ValueError(f"train.{key} must be >= 1, got {getattr(t, key)}")
        if t.max_steps is not None and t.max_steps < 1:
            raise ValueError(f"train.max_steps must be >= 1 or None, got {t.max_steps}")
        if not 0.0 <= t.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
        for key in ("lr_classical", "lr_quantum", "lr_gate", "vae_lr", "weight_decay", "grad_clip"):
            if getattr(t, key) < 0:
                raise ValueError(f"train.{key} must be >= 0, got {getattr(t, key)}")
        if self.sample.steps < 1:
            raise ValueError(f"sample.steps must be >= 1, got {self.sample.steps}")
        if self.data.limit is not None and self.data.limit < 1:
            raise ValueError(f"data.limit must be >= 1 or None, got {self.data.limit}")
        for combo in self.data.holdout:
            if combo.count("/") != 1:
                raise ValueError(f"data.holdout entries are 'colour/style', got {combo!r}")
        return self


# ---------------------------------------------------------------------------------------------------- presets


def _model(**kw: Any) -> ModelConfig:
    return dataclasses.replace(ModelConfig(), **kw)


def _tiny() -> RunConfig:
    """CPU demo: built-in faces at 32 px, a small VAE trained first, 3 qubits in the bottleneck, exact.

    Sized for a few minutes on 2 cores: VAE x2 (16x16x4 latents), a 2-level U-Net (32, 64) with
    cross-attention at 8x8 and in the middle block, where the Q-FFN sits. Two hair colour/style pairs are held
    out of training.
    """
    return RunConfig(
        name="tiny",
        model=_model(
            image_size=32,
            # widths with a small gcd: GroupNorm then pools 2-3 channels per group instead of normalising each
            # channel alone (instance norm), which erases flat colours such as hair and slows the VAE a lot
            vae_block_channels=(24, 36),
            unet_block_channels=(32, 64),
            attention_head_dim=32,
            quantum_blocks="bottleneck",
            n_qubits=3,
            quantum_executor="statevector",
            # v-prediction: at high noise an eps-model's x0 estimate is amplified by 1/sqrt(alpha_bar); a
            # short run learns global layout (and hair colour) much sooner predicting v (Salimans & Ho 2022)
            prediction_type="v_prediction",
        ),
        data=DataConfig(source="procedural", image_size=32, limit=2000, seed=0, holdout=("blue/twintails", "red/long")),
        train=TrainConfig(
            epochs=16,  # measured: 16 -> 33% hair colour (chance 9%); 10 -> 22%, 5 -> 13%
            batch_size=16,
            lr_classical=1.5e-3,
            lr_quantum=1.5e-3,
            lr_gate=1e-3,
            warmup_steps=50,
            ema_decay=0.99,
            vae_epochs=3,
            vae_lr=5e-3,
            vae_batch_size=16,
            log_every=10,
        ),
        sample=SampleConfig(steps=20, guidance=3.0, scheduler="ddim"),
    )


def _anime64() -> RunConfig:
    """The shared real faces (../shared/data/anime-faces-64) on CPU at 64 px with the pixel hair-colour
    captioner."""
    return RunConfig(
        name="anime64",
        # 3 VAE levels (x4): 16x16x4 latents, the same latent grid as tiny, so a CPU step stays cheap
        model=_model(
            image_size=64,
            vae_block_channels=(32, 64, 128),
            quantum_blocks="bottleneck",
            n_qubits=4,
            quantum_executor="statevector",
        ),
        data=DataConfig(source="anime-faces", image_size=64, limit=None, seed=0),
        train=TrainConfig(
            epochs=20,
            batch_size=32,
            lr_classical=2e-4,
            lr_quantum=5e-4,
            lr_gate=1e-4,
            warmup_steps=500,
            ema_decay=0.999,
            vae_epochs=5,
            vae_lr=1e-3,
        ),
        sample=SampleConfig(
            steps=25,
            guidance=3.0,
            prompts=(
                "anime face, blue hair",
                "anime face, red hair",
                "anime face, blonde hair",
                "anime face, black hair",
            ),
        ),
    )


def _paper() -> RunConfig:
    """The original design's setting, for a GPU.

    128 px; a 4-level VAE (x8, the original's 4x16x16 latents; trained in stage 1 or ``--set model.vae=PATH``
    for sd-vae-ft-mse); U-Net 128 channels x (1, 2, 4, 8) with transformers at 8x8, 4x4 and the 2x2 middle, 8
    heads x 64; 16 data qubits with per-qubit ancillas (32 wires) on the exact tensor-network executor; Q-FFN
    in all transformer blocks; the original's learning rates, EMA 0.999, batch 64, fp16 and checkpointing. The
    text encoder stays the offline tiny T5 (at the original's width 512); ``--set
    model.text_encoder=google-t5/t5-small`` uses the original's pretrained one where the hub is reachable.
    """
    return RunConfig(
        name="paper",
        model=_model(
            image_size=128,
            vae_block_channels=(64, 128, 256, 256),
            unet_block_channels=(128, 256, 512, 1024),
            layers_per_block=2,  # 2 down + 3 up per level: 4 + 1 (mid) + 6 = 11 transformer blocks, as the original
            attention_levels=(1, 2),
            attention_head_dim=64,
            text_dim=512,
            text_heads=8,
            max_text_length=77,
            quantum_blocks="all",
            n_qubits=16,
            n_qubit_layers=2,
            ancillas="per-qubit",
            quantum_executor="tensornet",
        ),
        data=DataConfig(source="anime-faces", image_size=128, limit=None, seed=0),
        train=TrainConfig(
            epochs=30,
            batch_size=64,
            lr_classical=1e-4,
            lr_quantum=5e-4,
            lr_gate=1e-6,
            weight_decay=1e-2,
            warmup_steps=500,
            grad_clip=1.0,
            ema_decay=0.999,
            mixed_precision="fp16",
            gradient_checkpointing=True,
            vae_epochs=10,
        ),
        sample=SampleConfig(steps=50, guidance=7.5, scheduler="dpm++"),
    )


PRESETS: dict[str, Callable[[], RunConfig]] = {"tiny": _tiny, "anime64": _anime64, "paper": _paper}


def make_preset(name: str) -> RunConfig:
    """Return a fresh preset config. Raises ValueError on an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


# -------------------------------------------------------------------------------------------------- overrides

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(text: str, tp: Any, key: str) -> Any:
    """Parse ``text`` as a value of type ``tp``; raise ValueError naming ``key`` and the expected type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null", ""):
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _parse(text, a, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if errors else f"{key}: cannot parse {text!r}")
    if origin is Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ValueError(f"{key}={text!r} is not one of {list(args)}")
    if origin is tuple:
        items = [t.strip() for t in text.split(",") if t.strip()]
        inner = args[0] if args else str
        return tuple(_parse(t, inner, key) for t in items)
    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ValueError(f"{key}={text!r} is not a bool (use true/false)")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not an int") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not a float") from None
    if tp is str:
        return text
    raise ValueError(f"{key}: fields of type {tp!r} cannot be set from the command line")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def apply_overrides(cfg: RunConfig, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    """Return ``cfg`` with ``section.field=value`` overrides applied and validated.

    Args:
        cfg: The base config (usually a preset).
        overrides: Strings like ``"train.epochs=3"``, ``"model.n_qubits=4"``,
        ``"data.holdout=blue/long,red/short"``
            (tuples are comma-separated; ``none`` sets an optional field to None).

    Raises:
        ValueError: On a malformed override, an unknown key (the message lists the valid ones), a value of the
            wrong type, or a config that fails validation.
    """
    sections: dict[str, Any] = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        key, value = (s.strip() for s in item.split("=", 1))
        if key == "name":
            sections["name"] = value
            continue
        section, _, name = key.partition(".")
        obj = sections.get(section)
        if not dataclasses.is_dataclass(obj) or not name:
            valid = [s for s, v in sections.items() if dataclasses.is_dataclass(v)]
            raise ValueError(f"unknown config key {key!r}; keys look like <section>.<field> with section in {valid}")
        hints = _hints(type(obj))
        if name not in {f.name for f in dataclasses.fields(obj)}:
            raise ValueError(f"unknown config key {key!r}; valid {section} keys: {sorted(hints)}")
        sections[section] = dataclasses.replace(obj, **{name: _parse(value, hints[name], key)})
    return RunConfig(**sections).validate()


# --------------------------------------------------------------------------------------------------- JSON I/O


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """JSON-ready dict (the model section through ``ModelConfig.to_dict``)."""
    to_dict = getattr(cfg.model, "to_dict", None)
    model = to_dict() if callable(to_dict) else dataclasses.asdict(cfg.model)
    return {
        "name": cfg.name,
        "model": model,
        "data": dataclasses.asdict(cfg.data),
        "train": dataclasses.asdict(cfg.train),
        "sample": dataclasses.asdict(cfg.sample),
    }


def _section(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = _hints(cls)
    unknown = set(raw) - set(hints)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    # JSON turns tuples into lists; convert back so frozen configs compare equal
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return cls(**kw)


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Inverse of :func:`config_to_dict`. Raises ValueError on unknown keys."""
    from_dict = getattr(ModelConfig, "from_dict", None)
    model = from_dict(raw["model"]) if callable(from_dict) else ModelConfig(**raw["model"])
    return RunConfig(
        name=raw.get("name", "custom"),
        model=model,
        data=_section(DataConfig, raw.get("data", {}), "data"),
        train=_section(TrainConfig, raw.get("train", {}), "train"),
        sample=_section(SampleConfig, raw.get("sample", {}), "sample"),
    )


def save_config(cfg: RunConfig, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as JSON atomically (temp file, then rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config_to_dict(cfg), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a config written by :func:`save_config` (a file, or a directory holding ``run_config.json``).

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If it holds unknown keys.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "run_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no run config at {path}")
    return config_from_dict(json.loads(path.read_text()))
