"""Progress output of a run: ``metrics.jsonl`` + TensorBoard, sample grids, the evolution figure and plots.

Everything here reads or writes files in the run directory; nothing depends on the model, so plots can be redrawn from
``metrics.jsonl`` after a run (or while it runs).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MetricsLogger", "read_metrics", "save_grid", "plot_loss", "plot_gates", "evolution_figure"]


class MetricsLogger:
    """Append-only JSON-lines log plus (optionally) TensorBoard scalars.

    Each record is one JSON object per line with at least ``step``; ``log`` flushes at once so a killed run keeps
    everything logged so far. On resume, records past the resumed step are dropped first, so the file never holds the
    same step twice, and so is a torn last record (a crash or a full disk mid-append), with a warning.

    Args:
        run_dir: Run directory; writes ``metrics.jsonl`` and ``tb/``.
        tensorboard: Also write TensorBoard event files.
        resume_step: If given, truncate records with ``step > resume_step`` (a resumed run replays those).
    """

    def __init__(self, run_dir: str | os.PathLike, *, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            records, torn = _parse(self.path)
            if torn is not None:
                warnings.warn(
                    f"{self.path}: dropped a torn last record ({torn[:60]!r}), left by a run stopped mid-write",
                    UserWarning,
                    stacklevel=2,
                )
            keep = [r for r in records if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = int(record.get("step", record.get("vae_epoch", 0)))  # stage-1 records count epochs
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(float(v)):
                    self._tb.add_scalar(k, v, step)

    def image(self, tag: str, path: str | os.PathLike, step: int) -> None:
        """Add a PNG (a sample or reconstruction grid) to TensorBoard; a no-op without TensorBoard."""
        if self._tb is None:
            return
        from PIL import Image

        pixels = np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3) uint8
        self._tb.add_image(tag, pixels, step, dataformats="HWC")
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _parse(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The records of a ``metrics.jsonl`` and its torn last line (None if the file ends cleanly).

    Raises:
        ValueError: If a line other than the last is not JSON (the file was damaged, not cut short), naming it.
    """
    lines = path.read_text().splitlines()
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                return records, line
            raise ValueError(f"{path} line {i + 1} is not a JSON record ({err}); repair or remove that line") from None
    return records, None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a missing file gives an empty list; a torn last line is left out).

    Raises:
        ValueError: If a line before the last is not JSON, naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    return _parse(path)[0]


def save_grid(images: np.ndarray, path: str | os.PathLike, *, nrow: int, pad: int = 2) -> Path:
    """Write images ``(N, H, W, 3)`` uint8 (or float in [0, 1]) as a PNG grid, ``nrow`` images per row."""
    from PIL import Image

    imgs = np.asarray(images)
    if imgs.dtype != np.uint8:
        imgs = (np.clip(imgs, 0, 1) * 255).round().astype(np.uint8)
    n, h, w, _ = imgs.shape
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path


def _figure(**kwargs: Any) -> Any:
    """A bare ``matplotlib.figure.Figure``: runs write files, so no pyplot state, no window and no backend choice."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def plot_loss(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """Training loss per step (raw and a running mean) to a PNG; None if no loss was logged."""
    pts = [(r["step"], r["loss"]) for r in records if "loss" in r and r["loss"] is not None]
    if not pts:
        return None
    steps, loss = (np.asarray(v, float) for v in zip(*pts))
    fig = _figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="loss")
    k = max(1, len(loss) // 20)
    ax.plot(steps, np.convolve(loss, np.ones(k) / k, mode="same"), lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("diffusion loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)


def plot_gates(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """Each block's gate lambda (records' ``gate/<block>`` keys) against the step; None if there are none."""
    keys = sorted({k for r in records for k in r if k.startswith("gate/")})
    if not keys:
        return None
    fig = _figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for k in keys:
        pts = [(r["step"], r[k]) for r in records if k in r]
        ax.plot(*zip(*pts), label=k.removeprefix("gate/"))
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("gate λ")
    ax.set_title("quantum-branch gate per block")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)


def evolution_figure(grid_paths: dict[int, Path], path: str | os.PathLike) -> Path | None:
    """Early, middle and final epochs' sample grids side by side (the original README's figure).

    Args:
        grid_paths: Epoch number -> that epoch's grid PNG.
        path: Output PNG.

    Returns:
        The path, or None if there are no grids yet.
    """
    if not grid_paths:
        return None
    from PIL import Image

    epochs = sorted(grid_paths)
    chosen = sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})
    fig = _figure(figsize=(4 * len(chosen), 4.4))
    axes = fig.subplots(1, len(chosen), squeeze=False)
    for ax, ep in zip(axes[0], chosen):
        ax.imshow(np.asarray(Image.open(grid_paths[ep]).convert("RGB")))
        ax.set_title(f"epoch {ep}")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
