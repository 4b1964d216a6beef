"""``qldm demo``: the README's main command. Train ``tiny`` end to end on built-in faces, then check it.

Trains the VAE (stage 1) and the hybrid denoiser (stage 2) on procedural faces, samples a grid with every hair colour,
and judges the hair colour of >= 200 generated faces (including colour/style pairs held out of training) with the
generator's own hair mask. The accuracy and a binomial test against chance are printed and saved as
``hair_colour_check.json`` in the run directory.
"""

from __future__ import annotations

import argparse

from qldm.commands.common import config_parent, deprecated_alias, out_parent, positive_int, progress_parent


def parents() -> list[argparse.ArgumentParser]:
    return [config_parent(), out_parent(help="run directory", default="runs/demo"), progress_parent()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    n = parser.add_argument("--n", type=positive_int, default=220, help="generated faces to judge (>= 200 recommended)")
    batch = parser.add_argument("--batch-size", type=positive_int, default=55, help="prompts per sampling batch")
    deprecated_alias(parser, "--samples", n)
    deprecated_alias(parser, "--batch", batch)


def eval_prompts(cfg, n: int, *, seed: int = 1234) -> list[dict[str, str]]:
    """``n`` attribute dicts cycling over every (hair colour, style) pair, held-out pairs included.

    Eye colour and background are drawn at random (seeded) so prompts read like training captions.
    """
    import numpy as np

    from qldm.data import BACKGROUND_COLORS, EYE_COLORS, HAIR_COLORS, HAIR_STYLES

    rng = np.random.default_rng(seed)
    pairs = [(c, s) for s in HAIR_STYLES for c in HAIR_COLORS]
    return [
        {
            "hair_color": pairs[i % len(pairs)][0],
            "hair_style": pairs[i % len(pairs)][1],
            "eye_color": EYE_COLORS[rng.integers(len(EYE_COLORS))],
            "background": BACKGROUND_COLORS[rng.integers(len(BACKGROUND_COLORS))],
        }
        for i in range(n)
    ]


def hair_colour_check(pipe, cfg, out_dir, *, n: int, batch: int, show_progress: bool = True) -> dict:
    """Sample ``n`` prompted faces, judge their hair colour, test against chance; writes JSON and a grid.

    Returns:
        The JSON record (accuracy, held-out accuracy, p-value, per-colour counts, settings).
    """
    import json
    import time
    from pathlib import Path

    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from qldm.data import HAIR_COLORS, binomial_test_vs_chance, judge_hair_colour, make_caption
    from qldm.train.progress import save_grid

    out_dir = Path(out_dir)
    attrs = eval_prompts(cfg, n)
    holdout = {tuple(c.split("/", 1)) for c in cfg.data.holdout}
    images = []
    t0 = time.perf_counter()
    for start in tqdm(range(0, n, batch), desc="judge samples", disable=not show_progress):
        chunk = attrs[start : start + batch]
        with torch.no_grad():
            images.append(
                pipe(
                    [make_caption(a) for a in chunk],
                    num_inference_steps=cfg.sample.steps,
                    guidance_scale=cfg.sample.guidance,
                    generator=torch.Generator().manual_seed(10_000 + start),
                    output_type="np",
                ).images  # (b, H, W, 3) in [0, 1]
            )
    imgs = np.concatenate(images)  # (n, H, W, 3) in [0, 1]
    sample_s = time.perf_counter() - t0
    pixels = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2) * 2 - 1  # (n, 3, H, W) in [-1, 1]
    judged = judge_hair_colour(pixels, attrs)
    hits = [j == a["hair_color"] for j, a in zip(judged, attrs)]
    held = [h for h, a in zip(hits, attrs) if (a["hair_color"], a["hair_style"]) in holdout]
    k, p0 = int(sum(hits)), 1.0 / len(HAIR_COLORS)
    test = binomial_test_vs_chance(k, n, p0)
    held_test = binomial_test_vs_chance(int(sum(held)), len(held), p0) if held else None
    record = {
        "n": n,
        "correct": k,
        "accuracy": k / n,
        "chance": p0,
        "ci95": [test.ci_low, test.ci_high],
        "p_value": test.pvalue,
        "heldout_n": len(held),
        "heldout_correct": int(sum(held)),
        "heldout_accuracy": (sum(held) / len(held)) if held else None,
        "heldout_p_value": held_test.pvalue if held_test else None,
        "per_colour": {
            c: {
                "n": sum(a["hair_color"] == c for a in attrs),
                "correct": sum(h for h, a in zip(hits, attrs) if a["hair_color"] == c),
            }
            for c in HAIR_COLORS
        },
        "holdout_pairs": sorted("/".join(p) for p in holdout),
        "steps": cfg.sample.steps,
        "guidance": cfg.sample.guidance,
        "scheduler": cfg.sample.scheduler,
        "sampling_seconds": sample_s,
        "judge": "qldm.data.judge_hair_colour: palette colour nearest the mean in the generator's hair mask",
    }
    (out_dir / "hair_colour_check.json").write_text(json.dumps(record, indent=2) + "\n")
    # one row per hair style, one column per colour (the first len(pairs) samples cover every pair once)
    first = min(n, len(HAIR_COLORS) * 4)
    save_grid(imgs[:first], out_dir / "demo_grid.png", nrow=len(HAIR_COLORS))
    return record


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from qldm.commands.common import resolve_config
    from qldm.models import QLDMPipeline
    from qldm.train import train

    cfg = resolve_config(args)
    if cfg.data.source != "procedural":
        raise ValueError("the demo judges hair colour with the procedural generator's hair mask; use procedural data")
    out = Path(args.out)
    t0 = time.perf_counter()
    result = train(cfg, out, show_progress=not args.no_progress)
    train_s = time.perf_counter() - t0
    pipe = QLDMPipeline.from_pretrained(result.pipeline_dir)
    record = hair_colour_check(
        pipe, result.cfg, out, n=args.n, batch=args.batch_size, show_progress=not args.no_progress
    )
    total_s = time.perf_counter() - t0
    record.update(train_seconds=train_s, total_seconds=total_s)
    import json

    (out / "hair_colour_check.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"demo: trained {result.steps} steps in {train_s:.0f} s; total {total_s:.0f} s")
    print(
        f"hair colour followed in {record['correct']}/{record['n']} samples ({record['accuracy']:.1%}; "
        f"chance {record['chance']:.1%}; binomial p = {record['p_value']:.2e})"
    )
    if record["heldout_n"]:
        print(
            f"held-out colour/style pairs {record['holdout_pairs']}: "
            f"{record['heldout_correct']}/{record['heldout_n']} ({record['heldout_accuracy']:.1%}, "
            f"p = {record['heldout_p_value']:.2e})"
        )
    print(f"grid: {out / 'demo_grid.png'}  per-epoch grids: {out / 'samples'}  evolution: {out / 'evolution.png'}")
    return 0
