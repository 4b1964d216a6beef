"""Generic helpers for the frozen config dataclasses: choice checks, dict I/O and command-line value parsing.

Every config class (``QFFNConfig``, ``ModelConfig``, the run sections) declares its choices as ``Literal`` types;
the helpers here read those types, so no list of valid values is written twice.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar

__all__ = ["literal_choices", "check_choices", "to_dict", "from_dict", "parse_value"]

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal[...]`` (or ``Literal[...] | None``) type, else None."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    if _is_union(tp):
        for arg in typing.get_args(tp):
            if typing.get_origin(arg) is Literal:
                return typing.get_args(arg)
    return None


def check_choices(obj: Any, *, prefix: str = "") -> None:
    """Check every ``Literal``-typed field of the dataclass ``obj`` against its allowed values.

    Args:
        obj: A dataclass instance.
        prefix: Prepended to field names in the message (e.g. ``"qffn."``).

    Raises:
        ValueError: ``"<prefix><field>=<value> is not one of [...]"`` for the first bad field.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        choices = literal_choices(hints[f.name])
        value = getattr(obj, f.name)
        if choices is None or value in choices or (value is None and _is_union(hints[f.name])):
            continue
        raise ValueError(f"{prefix}{f.name}={value!r} is not one of {list(choices)}")


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a (nested) config dataclass (JSON turns tuples into lists; :func:`from_dict` restores)."""
    return dataclasses.asdict(obj)


def _restore(value: Any, tp: Any, where: str) -> Any:
    """Turn a JSON value back into the field type ``tp`` (nested dataclasses and tuples)."""
    if value is None:
        return None
    if _is_union(tp):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _restore(value, inner[0], where) if len(inner) == 1 else value
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value, where=where)
    if typing.get_origin(tp) is tuple and isinstance(value, list | tuple):
        return tuple(value)
    return value


def from_dict(cls: type[T], raw: dict[str, Any], *, where: str | None = None) -> T:
    """Build the config dataclass ``cls`` from a dict (e.g. parsed JSON), nested configs included.

    Missing keys take the class defaults.

    Args:
        cls: The dataclass type.
        raw: Field values; nested dataclass fields may be dicts, tuple fields may be lists.
        where: Dotted name of this section in error messages (default: the class name; ``""`` for the root, whose
            sections are then named bare, e.g. ``train``).

    Raises:
        ValueError: One line naming the unknown keys and the valid ones.
    """
    label = where or cls.__name__
    if not isinstance(raw, dict):
        raise ValueError(f"{label}: expected a mapping of fields, got {type(raw).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ValueError(f"{label}: unknown keys {unknown}; valid keys: {sorted(names)}")
    return cls(**{k: _restore(v, hints[k], f"{where}.{k}" if where else k) for k, v in raw.items()})


def parse_value(text: str, tp: Any, key: str) -> Any:
    """Parse the command-line text ``text`` as a value of the field type ``tp``.

    Tuples are comma-separated; ``none`` (or an empty string) sets an optional field to None.

    Raises:
        ValueError: One line naming ``key`` and the expected type or choices.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        if type(None) in args and text.strip().lower() in ("none", "null", ""):
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return parse_value(text, a, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if errors else f"{key}: cannot parse {text!r}")
    if origin is Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ValueError(f"{key}={text!r} is not one of {list(args)}")
    if origin is tuple:
        inner = args[0] if args else str
        return tuple(parse_value(t.strip(), inner, key) for t in text.split(",") if t.strip())
    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ValueError(f"{key}={text!r} is not a bool (use true/false)")
    for kind, name in ((int, "an int"), (float, "a float")):
        if tp is kind:
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"{key}={text!r} is not {name}") from None
    if tp is str:
        return text
    raise ValueError(f"{key}: fields of type {tp!r} cannot be set from the command line")
