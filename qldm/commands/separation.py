"""``qldm fid-separation``: does the FID extractor see image quality? Real half A vs real B, blurred B, noisy B."""

from __future__ import annotations

import argparse

from qldm.commands.common import deprecated_alias, int_at_least, nonnegative_int, positive_int, progress_parent


def parents() -> list[argparse.ArgumentParser]:
    return [progress_parent()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="procedural", help="procedural | anime-faces | an image folder")
    parser.add_argument("--n", type=int_at_least(8), default=1000, help="images in all (split in two halves; >= 8)")
    parser.add_argument("--image-size", type=positive_int, default=None, help="default 32 (procedural) or 64")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the images and degradations")
    out = parser.add_argument("--out", help="also write the table to this JSON file")
    deprecated_alias(parser, "--json", out)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from qldm.eval.features import HandcraftedFeatures
    from qldm.eval.separation import format_separation, load_real_images, separation_table

    size = args.image_size or (32 if args.source == "procedural" else 64)
    images = load_real_images(args.source, args.n, image_size=size, seed=args.seed)
    extractor = HandcraftedFeatures()
    rows = separation_table(images, extractor, seed=args.seed)
    label = f"FID ({extractor.label}) on {args.source} at {size} px"
    print(format_separation(rows, label))
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"label": label, "source": args.source, "rows": rows}, indent=2) + "\n")
    return 0
