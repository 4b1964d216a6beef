"""``qldm config show``: print the effective run config of ``--preset``, ``--config`` and ``--set``, as the commands
that train (``train``, ``train-vae``, ``demo``, ``hardware plan``) would use it.

The output (YAML by default, or JSON) is itself a config file: ``--config`` reads it back.
"""

from __future__ import annotations

import argparse

from qldm.commands.common import config_parent, progress_parent

__all__ = ["add_arguments", "parents", "run"]


def parents() -> list[argparse.ArgumentParser]:
    return [progress_parent()]  # accepted like everywhere; showing a config draws no bar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``show`` (cheap: no heavy imports)."""
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show",
        parents=[config_parent()],
        help="print the effective run config (preset, then --config, then --set)",
        description="Print the run config that --preset, --config and --set describe, validated.",
    )
    show.add_argument("--format", choices=["yaml", "json"], default="yaml", help="output format")
    show.add_argument("--out", help="also write it to this file (readable by --config)")


def run(args: argparse.Namespace) -> int:
    """Print (and optionally write) the effective config; returns 0.

    Raises:
        ValueError: On an unknown preset, a bad config file or override (one line, exit 2).
    """
    import json
    from pathlib import Path

    from qldm.commands.common import resolve_config
    from qldm.config import config_to_dict, config_to_yaml

    cfg = resolve_config(args)
    text = config_to_yaml(cfg) if args.format == "yaml" else json.dumps(config_to_dict(cfg), indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text, end="")
    return 0
