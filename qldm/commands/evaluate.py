"""``qldm evaluate``: FID (labelled by its features), spectra and prompted hair-colour accuracy of trained runs, side
by side by comparison group (quantum, classical none, mlp / lambda=0 / shuffled controls), over seeds.

The report header records how the measured images were made: for ``--run`` the sampling options given here, for
``--images`` the settings each folder's ``set.json`` records (written by ``qldm sample`` and by this command's own
``samples/``); a setting a folder does not record is reported as not recorded, never as this command's default.
"""

from __future__ import annotations

import argparse

from qldm.commands.common import (
    int_at_least,
    nonnegative_float,
    out_parent,
    positive_int,
    progress_parent,
    seed_list,
    unit_float,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", action="append", default=[], help="run folder (uses RUN/pipeline); repeatable")
    parser.add_argument(
        "--images",
        action="append",
        default=[],
        help="folder of generated PNGs (metadata.jsonl or `qldm sample` output; seed-* subfolders are seeds); "
        "its set.json says how they were made",
    )
    parser.add_argument(
        "--n", type=int_at_least(2), default=200, help="--run: images per run and seed (>= 2; default 200)"
    )
    parser.add_argument("--steps", type=positive_int, default=25, help="--run: sampler steps (default 25)")
    parser.add_argument(
        "--guidance", type=nonnegative_float, help="--run: CFG scale >= 0, 1 = off (default: the run's sample.guidance)"
    )
    parser.add_argument("--seeds", default="0,1,2", help="--run: sampling seeds, comma-separated (default 0,1,2)")
    parser.add_argument(
        "--inception", help="local torch-fidelity Inception-v3 weights (.pth); default: offline features"
    )
    parser.add_argument("--real", default="procedural", help="data set of --images sets without set.json")
    parser.add_argument(
        "--hf-cutoff", type=unit_float, default=0.25, help="HF ratio cutoff as a fraction of Nyquist, in (0, 1]"
    )
    parser.add_argument("--quantum-executor", help="executor for the Q-FFN circuits while sampling")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="prompts per sampling batch")


def parents() -> list[argparse.ArgumentParser]:
    return [out_parent(help="report folder (report.md, report.json, plots, samples/)"), progress_parent()]


def _summary(values: list) -> object:
    """One value if all sets agree, else the sorted distinct values; ``None`` (not recorded) is named as such."""
    distinct = sorted({"not recorded" if v is None else v for v in values}, key=str)
    return distinct[0] if len(distinct) == 1 else distinct


def run(args: argparse.Namespace) -> int:
    import hashlib
    import platform
    from datetime import datetime, timezone
    from pathlib import Path

    import torch

    from qldm.commands.common import check_image_memory, reading
    from qldm.eval.attributes import judge_for_source
    from qldm.eval.features import make_extractor
    from qldm.eval.report import REAL_LABEL, measure_set, write_report
    from qldm.eval.sources import (
        evaluation_prompts,
        load_image_set,
        load_run,
        reference_images,
        run_label,
        sample_images,
        save_image_set,
    )

    if not args.run and not args.images:
        raise ValueError("give at least one --run or --images folder")
    try:
        seeds = seed_list(args.seeds)  # parsed here, not as an argparse type, so main() returns 2 instead of exiting
    except argparse.ArgumentTypeError as err:  # not a ValueError: name the option as argparse would
        raise ValueError(f"--seeds: {err}") from None
    for folder in args.images:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--images {folder} is not a folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails before minutes of sampling
    if args.inception:
        with reading(args.inception):  # truncated or foreign weights: one line naming the file
            extractor = make_extractor(args.inception)
    else:
        extractor = make_extractor(None)
    refs: dict[str, tuple] = {}
    sets = []
    made = []  # how each measured (non-real) set was sampled: the report header is built from these

    def measure(images, prompts, *, features, **kw):
        return measure_set(
            images, prompts, extractor=extractor, reference_features=features, hf_cutoff=args.hf_cutoff, **kw
        )

    def dataset_key(source: str, size: int, prompts: list[str]) -> str:
        """Sets share a reference only if they share data, size and (procedural) the prompt mix."""
        key = f"{Path(source).name if Path(source).is_dir() else source}@{size}"
        if source == "procedural" and prompts != evaluation_prompts(source, len(prompts)):
            key += "#" + hashlib.sha1("\n".join(sorted(prompts)).encode()).hexdigest()[:6]
        return key

    def reference(source: str, size: int, prompts: list[str]):
        key = dataset_key(source, size, prompts)
        if key not in refs:
            both = reference_images(source, prompts + prompts, image_size=size, seed=10_000)  # (2n, 3, S, S)
            ref, held = both[: len(prompts)], both[len(prompts) :]
            feats = extractor(ref)
            judge = "procedural" if source == "procedural" else None  # real faces do not follow the prompts
            sets.append(
                measure(
                    held,
                    prompts,
                    run="real",
                    label=REAL_LABEL,
                    dataset=key,
                    seed=0,
                    features=feats,
                    judge=judge,
                )
            )
            refs[key] = (feats,)
        return key, refs[key][0]

    for run_dir in args.run:
        with reading(run_dir):  # a damaged pipeline is one line naming it
            pipe, cfg = load_run(run_dir)
        if args.quantum_executor:
            pipe.unet.set_quantum_executor(args.quantum_executor)
        name, label = Path(run_dir).resolve().name, run_label(cfg.model)
        source, size = cfg.data.source, cfg.data.image_size
        # the held-out and feature reference sets (2n) and one sampled set (n) are in memory at once
        check_image_memory(3 * args.n, size, copies=1, what=f"--n {args.n} x 3 sets")
        prompts = evaluation_prompts(source, args.n)
        key, feats = reference(source, size, prompts)
        guidance = cfg.sample.guidance if args.guidance is None else args.guidance
        for seed in seeds:
            print(f"[evaluate] {name} ({label}) seed {seed}: sampling {args.n} images, {args.steps} steps")
            images = sample_images(
                pipe, prompts, seed=seed, steps=args.steps, guidance=guidance, batch_size=args.batch_size
            )
            settings = {"n": args.n, "seed": seed, "steps": args.steps, "guidance": guidance}
            made.append({"run": run_dir, **settings})
            save_image_set(
                images, prompts, out / "samples" / name / f"seed-{seed}", run=name, label=label,
                source=source, image_size=size, holdout=list(cfg.data.holdout), **settings,
            )  # fmt: skip
            sets.append(
                measure(
                    images,
                    prompts,
                    run=name,
                    label=label,
                    dataset=key,
                    seed=seed,
                    features=feats,
                    judge=judge_for_source(source),
                    holdout=tuple(cfg.data.holdout),
                )
            )
    for folder in map(Path, args.images):
        subsets = sorted(p for p in folder.glob("seed-*") if p.is_dir()) or [folder]
        for i, sub in enumerate(subsets):
            with reading(sub):
                images, prompts, meta = load_image_set(sub)
            source = str(meta.get("source", args.real))
            label = str(meta.get("label", folder.name))
            key, feats = reference(source, images.shape[-1], prompts)
            run_name, seed = str(meta.get("run", folder.name)), int(meta.get("seed", i))
            made.append(
                {
                    "images": str(sub),
                    "n": len(prompts),
                    "seed": meta.get("seed"),
                    **{k: meta.get(k) for k in ("steps", "guidance", "scheduler")},
                }
            )
            sets.append(
                measure(
                    images,
                    prompts,
                    run=run_name,
                    label=label,
                    dataset=key,
                    seed=seed,
                    features=feats,
                    judge=judge_for_source(source),
                    holdout=tuple(meta.get("holdout", ())),
                )
            )
    meta = {
        "command": "qldm evaluate",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": list(args.run),
        "images": list(args.images),
        "n": _summary([m["n"] for m in made]),
        "steps": _summary([m["steps"] for m in made]),
        "guidance": _summary([m["guidance"] for m in made]),
        "seeds": _summary([m["seed"] for m in made]),
        "sets": made,
        "hf_cutoff": args.hf_cutoff,
        "extractor": extractor.label,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    paths = write_report(sets, out, meta=meta)
    print(paths["markdown"].read_text())
    print(f"report -> {paths['markdown']}, {paths['json']}")
    return 0


def output_lock(args: argparse.Namespace):
    """One writer per ``--out`` (samples and report)."""
    from qldm.train.runlock import RunLock

    return RunLock(args.out)
