"""Shared command-line pieces: the parent parsers every command takes its common options from, and the parsers of
common values (integer lists, backend names).

The options mean the same in every command:

- ``--preset/--config/--set``: the run config (a preset or a saved ``run_config.json``, then typed overrides);
- ``--out``: where the command writes;
- ``--no-progress``: no progress bars.

A command module lists the parents it wants in ``parents()``; :mod:`qldm.cli` builds its subparser from them.
Imported while the parser is built, so it stays cheap: no torch, qiskit or model imports at module level.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = [
    "backend_name",
    "config_parent",
    "int_list",
    "out_parent",
    "progress_parent",
    "resolve_config",
    "word_list",
]


def config_parent(*, default_preset: str = "tiny") -> argparse.ArgumentParser:
    """A parent parser with ``--preset``, ``--config`` and repeatable ``--set key=value``."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("run config")
    group.add_argument(
        "--preset",
        default=default_preset,
        help=f"starting preset: tiny | anime64 | paper (default {default_preset})",
    )
    group.add_argument("--config", help="start from a saved run_config.json (or a run directory) instead of a preset")
    group.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.epochs=3 --set model.qffn.n_qubits=4 (repeatable)",
    )
    return parser


def out_parent(*, help: str, default: str | None = None) -> argparse.ArgumentParser:
    """A parent parser with ``--out`` (required unless a ``default`` is given)."""
    parser = argparse.ArgumentParser(add_help=False)
    if default is None:
        parser.add_argument("--out", required=True, help=help)
    else:
        parser.add_argument("--out", default=default, help=f"{help} (default {default})")
    return parser


def progress_parent() -> argparse.ArgumentParser:
    """A parent parser with ``--no-progress``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def resolve_config(args: argparse.Namespace):
    """The run config the options describe: preset or saved config, then the ``--set`` overrides, validated.

    Raises:
        ValueError: On an unknown preset, key or value type, or an invalid combination.
        FileNotFoundError: If ``--config`` names no file.
    """
    from qldm.config import apply_overrides, load_config, make_preset

    base = load_config(Path(args.config)) if getattr(args, "config", None) else make_preset(args.preset)
    return apply_overrides(base, list(args.overrides))


def backend_name(name: str, *, kinds: tuple[str, ...] = ("aer", "aer-noise", "fake", "ibm")) -> str:
    """``name`` checked by :func:`hardware.backends.parse_backend_name` (the one backend-name parser).

    Called from a command's ``run`` (not as an argparse ``type``), so a bad name is one ``qldm CMD: error:`` line.

    Raises:
        ValueError: ``BackendError`` on a malformed or unknown name, or a kind outside ``kinds``.
    """
    from hardware.backends import parse_backend_name

    parse_backend_name(name, kinds=kinds)
    return name


def int_list(text: str) -> list[int]:
    """``"2,4,6"`` -> ``[2, 4, 6]`` (an argparse ``type``).

    Raises:
        argparse.ArgumentTypeError: If an item is not an integer or the list is empty.
    """
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return values


def word_list(text: str) -> list[str]:
    """``"none, per-qubit"`` -> ``["none", "per-qubit"]`` (an argparse ``type``)."""
    return [t.strip() for t in text.split(",") if t.strip()]
