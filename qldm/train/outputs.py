"""What the main process of a run writes besides checkpoints: sample grids, the exported pipeline, plots, timings and
the list of data files it skipped."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qldm.config import save_config
from qldm.train.checkpoint import capture_rng, restore_rng
from qldm.train.components import make_pipeline
from qldm.train.progress import plot_gates, plot_loss, read_metrics, save_grid

__all__ = ["StageClock", "sample_grid", "export_pipeline", "write_plots", "append_timings", "write_skipped"]

SKIPPED_NAME = "skipped_files.tsv"


def write_skipped(dataset: Any, run_dir: Path) -> Path | None:
    """List the data files ``dataset`` skipped, with why, in ``run_dir/skipped_files.tsv``, and say how many.

    A data set without skips (or without the ``skip_reasons`` record) removes a list left by an earlier call, so
    the file always describes the data this run read.

    Returns:
        The list's path, or None if nothing was skipped.
    """
    path = run_dir / SKIPPED_NAME
    reasons: dict[str, str] = getattr(dataset, "skip_reasons", None) or {}
    if not reasons:
        path.unlink(missing_ok=True)
        return None
    kinds: dict[str, int] = {}
    for why in reasons.values():
        kind = why.split(":")[0].split(" (")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    path.write_text("file\treason\n" + "".join(f"{name}\t{why}\n" for name, why in sorted(reasons.items())))
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    warnings.warn(f"skipped {len(reasons)} data file(s) ({summary}); listed in {path}", UserWarning, stacklevel=2)
    return path


class StageClock:
    """Wall and CPU seconds per stage of one call: :meth:`lap` books the time since the last lap to a stage."""

    def __init__(self, stages: Sequence[str]) -> None:
        self.wall, self.cpu = dict.fromkeys(stages, 0.0), dict.fromkeys(stages, 0.0)
        self._last = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[stage] += now[0] - self._last[0]
        self.cpu[stage] += now[1] - self._last[1]
        self._last = now


def sample_grid(cfg, pipe_parts: dict[str, Any], unet, ema, path: Path) -> Path:
    """Sample the config's fixed prompts x seeds with EMA weights, without disturbing any training RNG.

    Returns:
        The PNG: row r holds seed r for every prompt, the same noise each epoch.
    """
    rng = capture_rng()
    params = list(unet.parameters())
    ema.store(params)
    ema.copy_to(params)
    unet.eval()
    try:
        pipe = make_pipeline(cfg, unet=unet, **pipe_parts)
        rows = []
        with torch.no_grad():
            for seed in cfg.sample.seeds:  # one call per seed, so a row's noise does not depend on the prompts
                rows.append(
                    pipe(
                        list(cfg.sample.prompts),
                        num_inference_steps=cfg.sample.steps,
                        guidance_scale=cfg.sample.guidance,
                        generator=torch.Generator().manual_seed(seed),
                        output_type="np",
                    ).images
                )  # (P, H, W, 3)
        images = np.concatenate(rows)  # (S * P, H, W, 3)
        return save_grid(images, path, nrow=len(cfg.sample.prompts))
    finally:
        ema.restore(params)
        unet.train()
        restore_rng(rng)


def export_pipeline(cfg, pipe_parts: dict[str, Any], unet, ema, run_dir: Path) -> Path:
    """Save the final pipeline with EMA weights into ``run_dir/pipeline`` (temp folder, then rename)."""
    params = list(unet.parameters())
    ema.store(params)
    ema.copy_to(params)
    final, tmp = run_dir / "pipeline", run_dir / ".tmp-pipeline"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        make_pipeline(cfg, unet=unet, **pipe_parts).save_pretrained(tmp)
        save_config(cfg, tmp / "run_config.json")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        ema.restore(params)
    return final


def write_plots(run_dir: Path) -> None:
    """``loss.png`` and ``gates.png`` from the run's ``metrics.jsonl``."""
    records = read_metrics(run_dir / "metrics.jsonl")
    plot_loss(records, run_dir / "loss.png")
    plot_gates(records, run_dir / "gates.png")


def append_timings(run_dir: Path, info: dict[str, Any], *, resume: bool) -> Path:
    """Add this call's entry to ``timings.json`` (a resume appends, a fresh run starts the list)."""
    path = run_dir / "timings.json"
    calls = json.loads(path.read_text())["calls"] if resume and path.is_file() else []
    path.write_text(json.dumps({"calls": [*calls, info]}, indent=2) + "\n")
    return path
