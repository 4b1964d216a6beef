"""``qldm ablate``: does a trained model use its quantum branch? Inference-time ablations, paired by seed and prompt.

The same trained weights sample the same prompts from the same noise with every Q-FFN's circuit intact (``none``) and
ablated (``lambda0``, ``mean``, ``shuffle``; see :mod:`qldm.eval.ablation`). Each set of images is written as it
completes (``<out>/<mode>/seed-<s>/``, with ``set.json``) and reused by a rerun, so an interrupted study loses nothing.
``ablation.json`` and ``ablation.md`` report FID against the held-out reference, the high-frequency energy ratio and
the hair-colour accuracy of each set, and each ablation's paired change with its 95% interval.
"""

from __future__ import annotations

import argparse

from qldm.commands.common import out_parent, progress_parent, reading, seed_list

DEFAULT_MODES = "lambda0,mean,shuffle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder (uses RUN/pipeline) or a pipeline folder")
    parser.add_argument(
        "--modes", default=DEFAULT_MODES, help="ablations, comma-separated (lambda0 is left out where no lambda exists)"
    )
    parser.add_argument("--n", type=int, default=200, help="images per mode and seed (default 200)")
    parser.add_argument("--seeds", type=seed_list, default=[0], help="sampling seeds, comma-separated (default 0)")
    parser.add_argument("--steps", type=int, default=25, help="sampler steps (default 25)")
    parser.add_argument("--guidance", type=float, help="CFG scale (default: the run's sample.guidance)")
    parser.add_argument("--batch-size", type=int, default=32, help="prompts per sampling batch (default 32)")
    parser.add_argument("--bootstrap", type=int, default=200, help="paired bootstrap draws for FID (default 200)")
    parser.add_argument("--hf-cutoff", type=float, default=0.25, help="HF ratio cutoff as a fraction of Nyquist")


def parents() -> list[argparse.ArgumentParser]:
    return [out_parent(help="report folder (ablation.json, ablation.md, <mode>/seed-*/ images)"), progress_parent()]


def _check(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    import math

    from qldm.commands.common import word_list
    from qldm.eval.ablation import ABLATIONS

    modes = word_list(args.modes)
    bad = [m for m in modes if m not in ABLATIONS or m == "none"]
    if not modes or bad:
        raise ValueError(f"--modes takes {list(ABLATIONS[1:])}, got {args.modes!r}")
    seeds = args.seeds
    for name, low in (("n", 2), ("steps", 1), ("batch_size", 1), ("bootstrap", 10)):
        if getattr(args, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    if args.guidance is not None and not (math.isfinite(args.guidance) and args.guidance >= 0):
        raise ValueError(f"--guidance must be a finite number >= 0, got {args.guidance}")
    if not 0 < args.hf_cutoff <= 1:
        raise ValueError(f"--hf-cutoff must be in (0, 1], got {args.hf_cutoff}")
    return modes, seeds


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np
    from tqdm.auto import tqdm

    from qldm.eval.ablation import ablate, has_gate, per_image_hf
    from qldm.eval.attributes import hair_colour_accuracy, judge_for_source
    from qldm.eval.features import make_extractor
    from qldm.eval.sources import (
        evaluation_prompts,
        load_image_set,
        load_run,
        reference_images,
        sample_images,
        save_image_set,
    )

    modes, seeds = _check(args)
    with reading(args.run):  # a damaged pipeline is one line naming it
        pipe, cfg = load_run(args.run)
    if "lambda0" in modes and not has_gate(pipe.unet):
        if args.modes != DEFAULT_MODES:
            raise ValueError(f"--modes lambda0: {args.run} has no lambda (its circuits are quantum-only)")
        modes = [m for m in modes if m != "lambda0"]  # the default list: the ablations that apply
    out = Path(args.out)
    source, size = cfg.data.source, cfg.data.image_size
    guidance = cfg.sample.guidance if args.guidance is None else args.guidance
    prompts = evaluation_prompts(source, args.n)
    extractor = make_extractor(None)
    ref_features = extractor(reference_images(source, prompts, image_size=size, seed=10_000))
    judge = judge_for_source(source)
    settings = {"run": str(args.run), "n": args.n, "steps": args.steps, "guidance": guidance, "source": source}

    measured: dict[tuple[str, int], dict] = {}
    jobs = [(mode, seed) for seed in seeds for mode in ["none", *modes]]
    for mode, seed in tqdm(jobs, desc="ablate", disable=args.no_progress):
        folder = out / mode / f"seed-{seed}"
        if (folder / "set.json").is_file() and json.loads((folder / "set.json").read_text()).get("n") == args.n:
            images, _, _ = load_image_set(folder)  # written by an earlier (interrupted) call: reuse
        else:
            with ablate(pipe.unet, mode, seed=seed):
                images = sample_images(
                    pipe, prompts, seed=seed, steps=args.steps, guidance=guidance, batch_size=args.batch_size
                )
            save_image_set(images, prompts, folder, ablation=mode, seed=seed, image_size=size, **settings)
        attrs = hair_colour_accuracy(images, prompts, judge=judge)
        correct = [
            float(p == a) if p is not None else np.nan for p, a in zip(attrs.predictions, [_colour(t) for t in prompts])
        ]
        measured[(mode, seed)] = {
            "features": extractor(images),
            "hf": per_image_hf(images, args.hf_cutoff),
            "correct": np.array(correct),
            "colour": np.array([str(p) for p in attrs.predictions]),  # the judged colour ("None": no judgement)
            "pixels": ((images.float().clamp(-1, 1) + 1) * 127.5).round().numpy(),  # (N, 3, H, W) as the PNGs hold
        }

    report = _report(measured, modes, seeds, ref_features, args.bootstrap)
    report["settings"] = {**settings, "seeds": seeds, "modes": modes, "fid_features": extractor.label}
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "ablation.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


def _colour(prompt: str) -> str | None:
    from qldm.data import parse_prompt

    return parse_prompt(prompt).get("hair_color")


def _report(measured: dict, modes: list[str], seeds: list[int], ref, draws: int) -> dict:
    """Per-set metrics and, per ablation, the paired change against ``none`` pooled over seeds."""
    import numpy as np

    from qldm.data import wilson_interval
    from qldm.eval.ablation import paired_bootstrap_fid, paired_t
    from qldm.eval.fid import feature_statistics, frechet_distance

    mu, sig = feature_statistics(ref)
    sets = {}
    for (mode, seed), m in measured.items():
        sets[f"{mode}/seed-{seed}"] = {
            "fid": float(frechet_distance(mu, sig, *feature_statistics(m["features"]))),
            "hf_ratio": float(np.mean(m["hf"])),
            "hair_accuracy": float(np.nanmean(m["correct"])),
        }
    deltas = {}
    keys = ("features", "hf", "correct", "colour", "pixels")
    for mode in modes:
        base = {k: np.concatenate([measured[("none", s)][k] for s in seeds]) for k in keys}
        other = {k: np.concatenate([measured[(mode, s)][k] for s in seeds]) for k in keys}
        changed = int((base["colour"] != other["colour"]).sum())
        low, high = wilson_interval(changed, len(base["colour"]))
        diff = np.abs(other["pixels"] - base["pixels"]).reshape(len(base["pixels"]), -1)  # (N, 3HW)
        deltas[mode] = {
            "fid": paired_bootstrap_fid(ref, base["features"], other["features"], draws=draws).to_dict(),
            "hf_ratio": paired_t(base["hf"], other["hf"]).to_dict(),
            "hair_accuracy": paired_t(base["correct"], other["correct"]).to_dict(),
            # the same prompt and noise with and without the ablation: how many judged colours move, and by how
            # many grey levels (of 255) the pixels move on average and at most
            "hair_colour_changed": {
                "share": changed / len(base["colour"]),
                "ci_low": low,
                "ci_high": high,
                "n": len(base["colour"]),
            },
            "pixel_change": {
                "mean": float(diff.mean()),
                "max": float(diff.max()),
                **paired_t(np.zeros(len(diff)), diff.mean(1)).to_dict(),
            },
        }
    return {"sets": sets, "paired_change_vs_none": deltas}


def _markdown(report: dict) -> str:
    s = report.get("settings", {})
    lines = [
        f"# Ablations of the quantum branch: {s.get('run')}",
        "",
        f"{s.get('n')} prompts x seeds {s.get('seeds')}, {s.get('steps')} steps, guidance {s.get('guidance')}, "
        f"FID ({s.get('fid_features')}) against held-out real faces.",
        "",
        "| set | FID | HF ratio | hair-colour accuracy |",
        "|---|---|---|---|",
    ]
    for name, m in report["sets"].items():
        lines.append(f"| {name} | {m['fid']:.3f} | {m['hf_ratio']:.5f} | {m['hair_accuracy']:.3f} |")
    lines += ["", "Paired change against the intact model (ablated - intact), 95% interval:", ""]
    lines += [
        "| ablation | delta FID | delta HF ratio | delta hair accuracy | hair colour changed | mean pixel change |",
        "|---|---|---|---|---|---|",
    ]
    for mode, d in report["paired_change_vs_none"].items():
        cells = [
            f"{d[k]['delta']:+.4g} [{d[k]['ci_low']:+.4g}, {d[k]['ci_high']:+.4g}]"
            for k in ("fid", "hf_ratio", "hair_accuracy")
        ]
        if "hair_colour_changed" in d:  # reports written before these were measured lack them
            c, p = d["hair_colour_changed"], d["pixel_change"]
            cells.append(f"{100 * c['share']:.1f}% ({100 * c['ci_low']:.1f}-{100 * c['ci_high']:.1f})")
            cells.append(f"{p['mean']:.3g} of 255 (max {p['max']:.0f})")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def output_lock(args: argparse.Namespace):
    """One writer per ``--out`` (image sets and report)."""
    from qldm.train.runlock import RunLock

    return RunLock(args.out)
