"""Shared command-line pieces: preset / ``--set`` / ``--config`` options and how they become a ``RunConfig``.

Imported by command modules' ``add_arguments``, so it must stay cheap: no torch or model imports at module
level.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_config_arguments", "resolve_config"]


def add_config_arguments(parser: argparse.ArgumentParser, *, default_preset: str = "tiny") -> None:
    """Add ``--preset``, ``--config`` and repeatable ``--set key=value``."""
    parser.add_argument(
        "--preset",
        default=default_preset,
        help=f"starting preset: tiny | anime64 | paper (default {default_preset})",
    )
    parser.add_argument("--config", help="start from a saved run_config.json (or a run directory) instead of a preset")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.epochs=3 --set model.qffn.n_qubits=4 (repeatable)",
    )


def resolve_config(args: argparse.Namespace):
    """The run config the options describe: preset or saved config, then the ``--set`` overrides, validated.

    Raises:
        ValueError: On an unknown preset, key or value type, or an invalid combination.
        FileNotFoundError: If ``--config`` names no file.
    """
    from qldm.config import apply_overrides, load_config, make_preset

    base = load_config(Path(args.config)) if getattr(args, "config", None) else make_preset(args.preset)
    return apply_overrides(base, list(args.overrides))
