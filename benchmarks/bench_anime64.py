"""Wall time of a whole ``anime64`` run, stage by stage, through the library's own trainer (``qldm.train.train``).

Stages (``TrainResult.timings``): data (decode + caption), vae (stage 1), latents (encode the data set once),
text (caption states), denoiser (optimisation steps), sampling (per-epoch grids), checkpoints, export.

Two modes:

- full (default): the preset as given (plus ``--set`` overrides), timed as it runs;
- ``--slice``: the same config on a small slice (``data.limit``, one epoch, one VAE epoch), from which per-unit
  rates (s per image, per VAE step, per denoiser step, per grid) are measured and projected onto the full config.
  On a shared machine this is the way to size a run without spending its hour.

Wall and CPU seconds are both reported: on a busy machine wall time is inflated by other processes (the load
average at start and end is recorded), CPU time much less; with one thread, CPU time is what the stage would take
on one idle core.

Afterwards the finished run is resumed once in the same folder (no steps are left, so it only reloads), to check
that a resume reuses the stage-1 VAE and the latent cache (``timings.json`` then says ``latent_cache: reused``).

    python benchmarks/bench_anime64.py [--set KEY=VALUE ...] [--slice N] [--threads T] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from _machine import machine_info  # benchmarks/ is sys.path[0] when this file runs as a script

STAGES = ("data", "vae", "latents", "text", "denoiser", "sampling", "checkpoints", "export")


def _counts(cfg, n_images: int) -> dict:
    """Units of work of a run of ``cfg`` on ``n_images`` training images."""
    t = cfg.train
    per_epoch = n_images // t.batch_size
    steps = min(t.max_steps or per_epoch * t.epochs, per_epoch * t.epochs)
    epochs_run = min(t.epochs, -(-steps // per_epoch)) if per_epoch else 0
    return {
        "images": n_images,
        "vae_steps": 0 if t.vae_pretrained else max(1, n_images // t.vae_batch_size) * t.vae_epochs,
        "denoiser_steps": steps,
        "grids": epochs_run // t.sample_every,
        "epochs": epochs_run,
    }


def _train_images(cfg) -> int:
    from qldm.data import HOLDOUT_SIZE, default_anime_faces_path
    from qldm.data.images import list_image_names

    if cfg.data.source != "anime-faces":
        return cfg.data.limit or 2000
    total = len(list_image_names(default_anime_faces_path())) - HOLDOUT_SIZE
    return min(total, cfg.data.limit) if cfg.data.limit else total


def _project(timings: dict, slice_counts: dict, full_counts: dict) -> dict:
    """Scale each stage's measured time by the ratio of its work units in the full run and the slice."""
    unit = {"data": "images", "vae": "vae_steps", "latents": "images", "denoiser": "denoiser_steps"}
    unit.update(sampling="grids", checkpoints="epochs")
    out = {}
    for stage in STAGES:
        key = unit.get(stage)
        if key is None or not slice_counts[key]:
            out[stage] = timings[stage]  # fixed cost (text states, export) or no unit measured
        else:
            out[stage] = timings[stage] / slice_counts[key] * full_counts[key]
    out["total"] = sum(out[s] for s in STAGES)
    return {k: round(v, 1) for k, v in out.items()}


def _table(title: str, rows: dict[str, dict]) -> None:
    cols = list(rows)
    print(f"\n{title}\n| stage | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for stage in (*STAGES, "total"):
        cells = " | ".join(f"{rows[c].get(stage, float('nan')):.1f}" for c in cols)
        print(f"| {stage} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="anime64")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--slice", type=int, default=0, help="train on this many images for one epoch and project")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--run-dir", default="", help="keep the run here (default: a temporary folder, removed)")
    ap.add_argument("--no-resume-check", action="store_true", help="skip the resume / latent-cache reuse check")
    ap.add_argument("--out", default="benchmarks/results/anime64_run.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from qldm.config import apply_overrides, config_to_dict, make_preset
    from qldm.train import train

    full = apply_overrides(make_preset(args.preset), args.overrides)
    overrides = list(args.overrides)
    if args.slice:
        overrides += [f"data.limit={args.slice}", "train.epochs=1", "train.vae_epochs=1", "train.max_steps=none"]
    cfg = apply_overrides(make_preset(args.preset), overrides)
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="bench_anime64_"))
    load = [os.getloadavg()]
    t0 = time.perf_counter()
    result = train(cfg, run_dir, show_progress=False)
    wall = time.perf_counter() - t0
    load.append(os.getloadavg())
    timings, cpu = dict(result.timings), dict(result.cpu_timings)
    report = {
        # the load is recorded around the run below, not inside "machine"
        "machine": {k: v for k, v in machine_info(torch.get_num_threads()).items() if k != "load_avg"},
        "load_avg": {"start": load[0], "end": load[1]},
        "preset": args.preset,
        "overrides": args.overrides,
        "slice": args.slice or None,
        "config": config_to_dict(result.cfg),
        "wall_s": round(wall, 1),
        "timings_s": timings,
        "cpu_s": cpu,
        "steps": result.steps,
        "last_loss": result.last_loss,
        "run_dir": str(run_dir) if args.run_dir else None,
    }
    rows = {"wall s": timings, "cpu s": cpu}
    if args.slice:
        sc, fc = _counts(cfg, _train_images(cfg)), _counts(full, _train_images(full))
        report.update(slice_counts=sc, full_counts=fc, projected_s=_project(timings, sc, fc))
        report["projected_cpu_s"] = _project(cpu, sc, fc)
        rates = {k: (round(timings[s] / sc[u], 4), round(cpu[s] / sc[u], 4)) for k, s, u in (
            ("data_s_per_image", "data", "images"), ("vae_s_per_step", "vae", "vae_steps"),
            ("latents_s_per_image", "latents", "images"), ("denoiser_s_per_step", "denoiser", "denoiser_steps"),
            ("sampling_s_per_grid", "sampling", "grids"),
        ) if sc[u]}  # fmt: skip
        report["rates"] = rates
        rows["projected wall s"] = report["projected_s"]
        rows["projected cpu s"] = report["projected_cpu_s"]
    if not args.no_resume_check:
        # the VAE and the latents must come from disk, not be recomputed
        again = train(result.cfg, run_dir, resume=True, show_progress=False, export=False)
        info = json.loads((run_dir / "timings.json").read_text())["calls"][-1]
        report["resume_check"] = {"timings_s": again.timings, "latent_cache": info["latent_cache"]}
        rows["resume s"] = again.timings
    _table(f"{args.preset} stage wall times (s), load {load[0][0]:.2f} -> {load[1][0]:.2f}", rows)
    for k, v in report.get("rates", {}).items():
        print(f"{k}: {v[0]} wall, {v[1]} cpu")
    if "resume_check" in report:
        print(f"resume: latent cache {report['resume_check']['latent_cache']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("wrote", out)
    if not args.run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
