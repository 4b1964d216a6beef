"""Measure the finished sets of a ``qldm ablate`` folder against its intact set of the same sampling seed.

For an ablation that was interrupted, or to read one seed alone: per ablation mode, FID against the held-out faces
(offline features, the same reference as ``qldm ablate``), the paired pixel change in grey levels and the share of
images whose judged hair colour changes.

    python benchmarks/ablation_from_sets.py ABLATE_DIR --seed 0 --out result.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hardware.study import pixel_change
from qldm.eval.attributes import hair_colour_accuracy
from qldm.eval.features import make_extractor
from qldm.eval.fid import feature_statistics, frechet_distance
from qldm.eval.sources import load_image_set, reference_images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a qldm ablate --out folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="anime-faces")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    base, prompts, _ = load_image_set(args.folder / "none" / f"seed-{args.seed}")
    extractor = make_extractor(None)
    mu, sig = feature_statistics(extractor(reference_images(args.source, prompts, image_size=args.image_size,
                                                            seed=10_000)))  # fmt: skip
    judge = "procedural" if args.source == "procedural" else "captioner"
    colours = hair_colour_accuracy(base, prompts, judge=judge).predictions
    result = {"folder": str(args.folder), "seed": args.seed, "n": len(base),
              "fid_intact": float(frechet_distance(mu, sig, *feature_statistics(extractor(base))))}  # fmt: skip
    for mode_dir in sorted(p for p in args.folder.iterdir() if p.is_dir() and p.name != "none"):
        folder = mode_dir / f"seed-{args.seed}"
        if not (folder / "set.json").is_file():
            continue
        images, _, _ = load_image_set(folder)
        judged = hair_colour_accuracy(images, prompts, judge=judge).predictions
        result[mode_dir.name] = {
            "fid": float(frechet_distance(mu, sig, *feature_statistics(extractor(images)))),
            "pixel_change": pixel_change(images.numpy(), base.numpy()),
            "hair_colour_changed": sum(a != b for a, b in zip(colours, judged)) / len(colours),
        }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
