"""Generic helpers for the frozen config dataclasses: field checks, dict I/O and command-line value parsing.

Every config class (``QFFNConfig``, ``ModelConfig``, the run sections) declares its choices as ``Literal`` types and
its numeric ranges as field metadata (:func:`bounded`); :func:`check_fields`, the one generic validator, reads both
together with the field types, so no valid value or range is written twice and no field needs its own ``if``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar

__all__ = [
    "Range",
    "bounded",
    "literal_choices",
    "check_choices",
    "check_fields",
    "to_dict",
    "from_dict",
    "parse_value",
]

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


@dataclasses.dataclass(frozen=True)
class Range:
    """The closed or open bounds a number (or every item of a tuple of numbers) must lie within."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def contains(self, value: float) -> bool:
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        """E.g. ``">= 1"``, ``"in [0, 1)"``."""
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else None
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else None
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
        return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}" if high else "any number"


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with ``default`` whose value (or each tuple item) :func:`check_fields` keeps in range."""
    return dataclasses.field(default=default, metadata={"range": Range(ge=ge, gt=gt, le=le, lt=lt)})


def _type_problem(value: Any, tp: Any) -> str | None:
    """What is wrong with ``value`` as a ``tp`` (``None`` if nothing): the scalar and tuple types configs use."""
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        problems = [_type_problem(value, a) for a in args if a is not type(None)]
        return None if any(p is None for p in problems) else problems[0]
    origin = typing.get_origin(tp)
    if origin is Literal:
        return None  # check_choices names the choices
    if origin is tuple:
        if not isinstance(value, tuple):
            return "a tuple"
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return next((p for p in (_type_problem(v, inner) for v in value) if p), None)
    if tp is bool:
        return None if isinstance(value, bool) else "a bool"
    if tp is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an int"
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "a float"
        return None if math.isfinite(value) else "a finite float"
    if tp is str:
        return None if isinstance(value, str) else "a string"
    return None  # nested sections are checked by their own validate()


def check_fields(obj: Any, *, prefix: str = "") -> None:
    """The one generic check of a config dataclass: every field's choices, type (floats finite) and range.

    Args:
        obj: A dataclass instance whose fields may carry ``Literal`` types and :func:`bounded` ranges.
        prefix: Prepended to field names in the message (e.g. ``"train."``).

    Raises:
        ValueError: ``"<prefix><field> must be ..., got <value>"`` for the first bad field.
    """
    check_choices(obj, prefix=prefix)
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        problem = _type_problem(value, hints[f.name])
        if problem:
            raise ValueError(f"{prefix}{f.name} must be {problem}, got {value!r}")
        bounds = f.metadata.get("range")
        if bounds is None or value is None:
            continue
        for item in value if isinstance(value, tuple) else (value,):
            if not bounds.contains(item):
                each = " (each item)" if isinstance(value, tuple) else ""
                raise ValueError(f"{prefix}{f.name} must be {bounds.describe()}{each}, got {value!r}")


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a (nested) config dataclass (JSON turns tuples into lists; :func:`from_dict` restores)."""
    return dataclasses.asdict(obj)


def _restore(value: Any, tp: Any, where: str, complete: bool) -> Any:
    """Turn a JSON value back into the field type ``tp`` (nested dataclasses and tuples)."""
    if value is None:
        return None
    if _is_union(tp):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _restore(value, inner[0], where, complete) if len(inner) == 1 else value
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value, where=where, complete=complete)
    if typing.get_origin(tp) is tuple and isinstance(value, list | tuple):
        return tuple(value)
    return value


def from_dict(cls: type[T], raw: dict[str, Any], *, where: str | None = None, complete: bool = False) -> T:
    """Build the config dataclass ``cls`` from a dict (e.g. parsed JSON), nested configs included.

    Args:
        cls: The dataclass type.
        raw: Field values; nested dataclass fields may be dicts, tuple fields may be lists.
        where: Dotted name of this section in error messages (default: the class name; ``""`` for the root, whose
            sections are then named bare, e.g. ``train``).
        complete: Every field, in every nested section, must be given (a saved run config: a missing section or
            field is damage, not a wish for the class default). False: missing keys take the class defaults.

    Raises:
        ValueError: One line naming the unknown keys and the valid ones, or (``complete``) the missing ones.
    """
    label = where or cls.__name__
    if not isinstance(raw, dict):
        raise ValueError(f"{label}: expected a mapping of fields, got {type(raw).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ValueError(f"{label}: unknown keys {unknown}; valid keys: {sorted(names)}")
    missing = [n for n in names if n not in raw]
    if complete and missing:
        dotted = [f"{where}.{n}" if where else n for n in missing]
        raise ValueError(f"missing {dotted}: a saved config must hold every field (it is never filled with defaults)")
    return cls(**{k: _restore(v, hints[k], f"{where}.{k}" if where else k, complete) for k, v in raw.items()})


def parse_value(text: str, tp: Any, key: str) -> Any:
    """Parse the command-line text ``text`` as a value of the field type ``tp``.

    Tuples are comma-separated (``none`` or an empty string: the empty tuple); ``none`` (or an empty string) sets
    an optional field to None.

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
        if text.strip().lower() in ("none", ""):
            return ()  # an empty tuple: "--set data.holdout=none" clears it
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
