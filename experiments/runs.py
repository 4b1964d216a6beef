"""Train, evaluate, ablate and measure one anime64 study run, then copy its record into the results folder.

A run folder (``work/NAME``) does not survive the machine, so what a later reader needs is copied as soon as each stage
finishes: the metrics, config and timings, the last sample grid, the evaluation (FID against the held-out faces, HF
ratio, hair colour), and for runs with a circuit the inference ablations and the spread of the circuit's outputs.
Stages already copied are skipped, so an interrupted launch resumes where it stopped. Nothing here commits to git.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunJob", "run_job", "EVAL_ARGS", "ABLATE_ARGS"]

EVAL_ARGS = ("--n", "100", "--seeds", "0,1,2")
ABLATE_ARGS = ("--n", "100", "--seeds", "0,1")


@dataclass(frozen=True)
class RunJob:
    """One study run.

    Attributes:
        name: Run name (the results sub-folder).
        sets: ``--set`` overrides on top of the preset (seed, VAE, design).
        has_circuit: Whether the trained model runs a circuit (then it is also ablated and its features measured).
        preset: The run preset.
    """

    name: str
    sets: tuple[str, ...]
    has_circuit: bool
    preset: str = "anime64"


def _timed(cmd: Sequence[str], env: dict[str, str]) -> tuple[int, float]:
    start = time.perf_counter()
    rc = subprocess.run(list(cmd), env=env).returncode
    return rc, time.perf_counter() - start


def _copy(src: Path, dest: Path) -> None:
    if src.is_file():
        shutil.copy(src, dest)


def run_job(job: RunJob, *, work: Path, results: Path) -> bool:
    """Run every missing stage of ``job``; returns whether all of them succeeded.

    Args:
        job: The run.
        work: Where run folders live (``work/NAME``, ``work/NAME-eval``, ...).
        results: The study's results folder; the record goes to ``results/NAME``.
    """
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    run, dest = work / job.name, results / job.name
    dest.mkdir(parents=True, exist_ok=True)
    stage_times = json.loads((dest / "stage_times.json").read_text()) if (dest / "stage_times.json").is_file() else {}

    def record(stage: str, seconds: float) -> None:
        stage_times[stage] = round(seconds, 1)
        (dest / "stage_times.json").write_text(json.dumps(stage_times, indent=1))

    if not (run / "pipeline").is_dir():
        cmd = ["qldm", "train", "--out", str(run), "--no-progress"]
        if (run / "checkpoints").is_dir():  # a killed run continues bit-exactly from its saved config
            cmd += ["--resume"]
        else:
            cmd += ["--preset", job.preset, *(a for s in job.sets for a in ("--set", s))]
        rc, secs = _timed(cmd, env)
        for f in ("metrics.jsonl", "run_config.json", "timings.json"):
            _copy(run / f, dest / f)
        grids = sorted((run / "samples").glob("epoch-*.png"))
        if grids:
            shutil.copy(grids[-1], dest / "grid.png")
        if rc != 0:
            return False
        record("train", secs)
    stages = [("eval", ["evaluate", "--run", str(run), *EVAL_ARGS], ("report.json", "report.md"), "eval_")]
    if job.has_circuit:
        stages.append(("ablate", ["ablate", "--run", str(run), *ABLATE_ARGS], ("ablation.json", "ablation.md"), ""))
        stages.append(("features", ["features", "--run", str(run)], ("features.json", "feature_maps.png"), ""))
    ok = True
    for stage, args, files, prefix in stages:
        if (dest / f"{prefix}{files[0]}").is_file():
            continue
        out = work / f"{job.name}-{stage}"
        rc, secs = _timed(["qldm", *args, "--out", str(out), "--no-progress"], env)
        if rc != 0:
            ok = False
            continue
        for f in files:
            _copy(out / f, dest / f"{prefix}{f}")
        record(stage, secs)
    return ok
