"""``qldm captioner-accuracy``: the hair-colour captioner's accuracy and confusion matrix against the hand labels."""

from __future__ import annotations

import argparse

from qldm.commands.common import progress_parent


def parents() -> list[argparse.ArgumentParser]:
    return [progress_parent()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="anime-faces-64 folder (default: $QLDM_ANIME_FACES or ../shared/data)")
    parser.add_argument("--split", default="eval", choices=("eval", "tune", "all"), help="which labels (default eval)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qldm.data.hair_eval import evaluate_captioner, format_confusion

    root = Path(args.root) if args.root else None
    print(format_confusion(evaluate_captioner(root, split=args.split)))
    return 0
