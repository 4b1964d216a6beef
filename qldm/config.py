"""Typed run configuration: frozen dataclasses, checked ``--set key=value`` overrides, JSON and YAML I/O.

A run is fully described by one :class:`RunConfig` (model, data, training, sampling). It is saved as JSON next to
every checkpoint and exported pipeline, so a result can always be traced to the exact configuration that made it.
Presets live in :mod:`qldm.presets` (built by functions, no mutable module state); overrides are parsed against the
dataclass field types, never evaluated as code, and may reach nested sections (``model.qffn.n_qubits=3``).

Config files are JSON or YAML (by suffix: ``.yaml``/``.yml``), complete or partial: :func:`load_config` layers a
file over a base config (a preset), key by key, so a file need only hold what it changes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qldm.config_io import bounded, check_fields, from_dict, parse_value, to_dict
from qldm.models.config import ModelConfig

__all__ = [
    "DataConfig",
    "TrainConfig",
    "SampleConfig",
    "RunConfig",
    "make_preset",
    "apply_overrides",
    "save_config",
    "load_config",
    "read_config_file",
    "config_to_yaml",
    "config_to_dict",
    "config_from_dict",
]


@dataclass(frozen=True)
class DataConfig:
    """Where images and captions come from.

    Attributes:
        source: ``"procedural"`` (built-in faces), ``"anime-faces"`` (../shared/data/anime-faces-64) or an image folder.
        image_size: Side in pixels after center-crop and resize.
        limit: Use at most this many images (procedural: how many to draw); None = all (procedural: 2000).
        seed: Seed of the procedural generator / subset choice.
        captions: Caption mode passed to ``build_dataset`` (``"auto"`` = the source's own captioner).
        holdout: Hair colour/style combinations never shown in training, as ``"colour/style"`` strings (procedural data
            only). The demo prompts them to test compositional generalisation.
    """

    source: str = "procedural"
    image_size: int = bounded(32, ge=1)
    limit: int | None = bounded(None, ge=1)
    seed: int = bounded(0, ge=0)
    captions: str = "auto"
    holdout: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, EMA, checkpointing and the stage-1 VAE settings.

    Learning rates follow the original's three AdamW groups (classical / quantum / gate lambda); weight decay
    is never applied to lambda. ``max_steps`` (if set) stops training early, which the tests and demo use.
    """

    epochs: int = bounded(10, ge=1)
    max_steps: int | None = bounded(None, ge=1)
    batch_size: int = bounded(32, ge=1)
    lr_classical: float = bounded(1e-4, ge=0)
    lr_quantum: float = bounded(5e-4, ge=0)
    lr_gate: float = bounded(1e-6, ge=0)  # 0 freezes lambda
    weight_decay: float = bounded(1e-2, ge=0)
    warmup_steps: int = bounded(500, ge=0)
    grad_clip: float = bounded(1.0, ge=0)  # 0: no clipping
    ema_decay: float = bounded(0.999, ge=0, lt=1)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    seed: int = bounded(0, ge=0)
    sample_every: int = bounded(1, ge=1)
    checkpoint_every: int = bounded(0, ge=0)  # steps between checkpoints; 0: only at epoch ends
    keep_checkpoints: int = bounded(2, ge=1)
    log_every: int = bounded(10, ge=1)
    num_workers: int = bounded(0, ge=0)
    vae_epochs: int = bounded(5, ge=1)
    vae_lr: float = bounded(1e-3, gt=0)
    vae_batch_size: int = bounded(32, ge=1)
    vae_kl_weight: float = bounded(1e-6, ge=0)
    vae_pretrained: str = ""
    vae_crop: int = 0  # train the (fully convolutional) VAE on random crops of this side; 0 = whole images


@dataclass(frozen=True)
class SampleConfig:
    """Sampling settings for the per-epoch grids and ``qldm sample`` defaults."""

    steps: int = bounded(25, ge=1)
    guidance: float = bounded(3.0, ge=0)
    scheduler: Literal["ddim", "dpm++", "ddpm"] = "ddim"
    prompts: tuple[str, ...] = (
        "anime face, blue hair, long hair",
        "anime face, red hair, short hair",
        "anime face, blonde hair, twintails",
        "anime face, green hair, long hair",
    )
    seeds: tuple[int, ...] = bounded((0, 1), ge=0)  # one row of len(seeds) images per prompt; seed s drives a whole row


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
        self.model.validate()
        for section in ("data", "train", "sample"):
            check_fields(getattr(self, section), prefix=f"{section}.")  # choices, types and declared ranges
        if self.model.image_size != self.data.image_size:
            raise ValueError(
                f"model.image_size={self.model.image_size} differs from data.image_size={self.data.image_size}"
            )
        if not self.sample.prompts or any(not p.strip() for p in self.sample.prompts):
            raise ValueError(f"sample.prompts must be non-empty strings, got {self.sample.prompts!r}")
        if not self.sample.seeds:
            raise ValueError("sample.seeds needs at least one seed")
        if self.data.holdout and self.data.source != "procedural":
            raise ValueError(
                f"data.holdout={list(self.data.holdout)} only applies to procedural data, not data.source="
                f"{self.data.source!r}; clear it with --set data.holdout=none"
            )
        for combo in self.data.holdout:
            if combo.count("/") != 1:
                raise ValueError(f"data.holdout entries are 'colour/style', got {combo!r}")
        return self


# -------------------------------------------------------------------------------------------------- presets


def make_preset(name: str) -> RunConfig:
    """Return a fresh preset config (see :mod:`qldm.presets`). Raises ValueError on an unknown name."""
    from qldm.presets import make_preset as make  # qldm.presets builds on the classes above

    return make(name)


# -------------------------------------------------------------------------------------------------- overrides


def _nested_hint(obj: Any, name: str, prefix: str) -> str:
    """`` (did you mean 'model.qffn.n_qubits'?)`` when ``name`` is a field of a section nested in ``obj``."""
    for f in dataclasses.fields(obj):
        sub = getattr(obj, f.name)
        if dataclasses.is_dataclass(sub) and name in {g.name for g in dataclasses.fields(sub)}:
            return f" (did you mean {prefix + f.name + '.' + name!r}?)"
    return ""


def _set(obj: Any, path: list[str], text: str, key: str, prefix: str = "") -> Any:
    """``obj`` with the field at the dotted ``path`` parsed from ``text`` (nested sections are replaced too)."""
    name, fields = path[0], {f.name: f for f in dataclasses.fields(obj)}
    if name not in fields:
        where = f"valid {prefix[:-1]} keys" if prefix else "valid top-level keys"
        raise ValueError(
            f"unknown config key {key!r}{_nested_hint(obj, name, prefix)}; {where}: {sorted(fields)} "
            "(keys look like <section>.<field>, nested sections as <section>.<sub>.<field>)"
        )
    current = getattr(obj, name)
    if len(path) == 1:
        if dataclasses.is_dataclass(current):
            raise ValueError(f"config key {key!r} is a section; set one of its fields, e.g. {key}.<field>")
        value = parse_value(text, typing.get_type_hints(type(obj))[name], key)
    elif dataclasses.is_dataclass(current):
        value = _set(current, path[1:], text, key, prefix + name + ".")
    else:
        raise ValueError(f"unknown config key {key!r}: {prefix + name} is a field, not a section")
    return dataclasses.replace(obj, **{name: value})


def apply_overrides(cfg: RunConfig, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    """Return ``cfg`` with ``section.field=value`` overrides applied and validated.

    Args:
        cfg: The base config (usually a preset).
        overrides: Strings like ``"train.epochs=3"``, ``"model.qffn.n_qubits=4"`` (nested sections by dotted path),
            ``"data.holdout=blue/long,red/short"`` (tuples are comma-separated; ``none`` sets an optional field to
            None).

    Raises:
        ValueError: On a malformed override, an unknown key (the message lists the valid ones), a value of the
            wrong type, or a config that fails validation.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        key, value = (s.strip() for s in item.split("=", 1))
        cfg = _set(cfg, key.split("."), value, key)
    return cfg.validate()


# ---------------------------------------------------------------------------------------------- JSON/YAML I/O


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """JSON-ready nested dict of every field (``model.qffn`` included)."""
    return to_dict(cfg)


def config_from_dict(raw: dict[str, Any], *, complete: bool = False) -> RunConfig:
    """Inverse of :func:`config_to_dict`. Raises ValueError on unknown keys, and with ``complete`` on missing ones;
    without it, missing keys take the defaults."""
    return from_dict(RunConfig, raw, where="", complete=complete)


def save_config(cfg: RunConfig, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as JSON atomically (temp file, then rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config_to_dict(cfg), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_config(path: str | os.PathLike, *, base: RunConfig | None = None) -> RunConfig:
    """Read a config file (JSON or YAML, or a directory holding ``run_config.json``), layered over ``base``.

    Args:
        path: The file or run directory.
        base: Config whose values stand where the file is silent (a preset); ``None``: the dataclass defaults.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: Naming the file, if it cannot be parsed, holds unknown keys, fails validation, or (without
            ``base``) lacks a section or field: a saved config is complete, and presets are the only source of defaults.
    """
    raw = read_config_file(path)
    where = Path(path) / "run_config.json" if Path(path).is_dir() else Path(path)
    try:
        if base is not None:
            raw = _layer(config_to_dict(base), raw)
        return config_from_dict(raw, complete=base is None).validate()
    except (ValueError, TypeError) as err:  # a non-dict section is a TypeError
        raise ValueError(f"run config {where}: {err}") from None


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in a JSON or YAML config file (a directory: its ``run_config.json``), not yet checked.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: Naming the file, if it does not parse or does not hold a mapping.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "run_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no run config at {path}")
    text = path.read_text()
    try:
        raw = _yaml_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except ValueError as err:  # JSONDecodeError
        raise ValueError(f"run config {path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - yaml.YAMLError, imported lazily
        reason = " ".join(str(err).split())
        raise ValueError(f"run config {path}: not valid YAML: {reason}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"run config {path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def _layer(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: nested sections merge key by key, any other value in ``top`` replaces."""
    out = dict(base)
    for key, value in top.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _layer(base[key], value) if both else value
    return out


# YAML 1.1 reads 1e-4 (no dot) as a string; config files write learning rates that way
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


def _yaml_load(text: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        """Safe loading, plus exponent floats without a dot."""

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def config_to_yaml(cfg: RunConfig) -> str:
    """``cfg`` as YAML text that :func:`load_config` reads back (sections in field order)."""
    import yaml

    plain = json.loads(json.dumps(config_to_dict(cfg)))  # tuples become lists, which YAML writes plainly
    return yaml.safe_dump(plain, sort_keys=False)
