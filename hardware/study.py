"""What a quantum device does to the pictures: one trained model sampled with its circuit under several conditions.

The same prompts and sampling seed are drawn under every condition; only what runs the circuit at the chosen
denoising steps (all other steps stay exact) changes:

- ``exact``: the model's own exact executors everywhere (the reference);
- ``shots``: exact values plus the shot noise of ``S`` shots (no device noise);
- ``emulator``: the calibrated device emulator (:class:`~hardware.emulator.EmulatorExecutor`) with ``S`` shots;
- ``emulator-elim``: the same, running the ancilla-eliminated branch circuits instead;
- ``aer``: Aer with ``NoiseModel.from_backend`` (a trajectory per shot, so only where the width allows) to check the
  emulator on the images themselves.

Each condition's images are written as they finish and reused on a rerun, so an interrupted study resumes without
recomputing them. Per condition the study records FID against the held-out faces, the HF ratio, hair-colour
accuracy, the mean pixel change against ``exact`` with a paired interval, and the modelled QPU cost per image
(:func:`hardware.sampling.plan`: a timing model, not a measurement).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Condition", "conditions", "parse_shots", "parse_step_selectors", "KINDS", "AER_MAX_WIRES"]

KINDS: tuple[str, ...] = ("exact", "shots", "emulator", "emulator-elim", "aer")
# Aer's noisy simulation draws a trajectory per shot on a statevector: beyond this many wires it is too slow to
# sample images with.
AER_MAX_WIRES = 12


@dataclass(frozen=True)
class Condition:
    """One way of running the circuit at the hardware steps.

    Attributes:
        kind: One of :data:`KINDS`.
        shots: Shots per parameter set (None for ``exact``).
        steps: Denoising-step selector of the hardware steps (``"last:5"``, ``"all"``; None for ``exact``).
    """

    kind: str
    shots: int | None = None
    steps: str | None = None

    @property
    def key(self) -> str:
        """Folder name, e.g. ``emulator-elim_s1024_last5``."""
        if self.kind == "exact":
            return "exact"
        return f"{self.kind}_s{self.shots}_{self.steps.replace(':', '').replace('-', 'to')}"


def parse_shots(text: str) -> list[int]:
    """``"64,256"`` -> ``[64, 256]``.

    Raises:
        ValueError: On a non-integer or a shot count <= 0.
    """
    try:
        shots = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--shots takes positive integers separated by commas, got {text!r}") from None
    if not shots or min(shots) <= 0:
        raise ValueError(f"--shots must all be >= 1, got {text!r}")
    return shots


def parse_step_selectors(text: str, total_steps: int) -> list[str]:
    """``"last:5,all,0-4"`` -> the selectors, each checked against the sampler's ``total_steps``.

    A selector is ``last:K``, ``all`` or a range ``i-j`` (inclusive); commas separate selectors.

    Raises:
        ValueError: On a malformed selector or steps outside ``0..total_steps-1``.
    """
    from hardware.sampling import parse_steps

    out = []
    for sel in (s.strip() for s in text.split(",") if s.strip()):
        if "-" in sel:
            lo, _, hi = sel.partition("-")
            if not (lo.isdigit() and hi.isdigit()) or int(lo) > int(hi):
                raise ValueError(f"bad step range {sel!r}; use i-j with i <= j")
            parse_steps(",".join(str(i) for i in range(int(lo), int(hi) + 1)), total_steps)
        else:
            if sel.startswith("last:") and sel[5:].isdigit() and int(sel[5:]) > total_steps:
                raise ValueError(f"{sel} asks for more than the sampler's {total_steps} steps")
            parse_steps(sel, total_steps)
        out.append(sel)
    if not out:
        raise ValueError("--hardware-steps names no selector")
    return out


def steps_selector(selector: str) -> str:
    """A study selector as :func:`hardware.sampling.parse_steps` takes it (``i-j`` -> ``i,...,j``)."""
    if "-" in selector:
        lo, _, hi = selector.partition("-")
        return ",".join(str(i) for i in range(int(lo), int(hi) + 1))
    return selector


def conditions(
    kinds: list[str], shots: list[int], steps: list[str], *, wires: int, eliminated_wires: int, has_ancillas: bool
) -> list[Condition]:
    """Every condition of a study, ``exact`` first.

    ``emulator-elim`` needs ancillas; ``aer`` runs the faithful circuit where it has at most :data:`AER_MAX_WIRES`
    wires, else the eliminated branch circuits where those fit, else it is left out.

    Raises:
        ValueError: On an unknown kind.
    """
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown condition kind(s) {bad}; choose from {list(KINDS)}")
    out = [Condition("exact")] if "exact" in kinds else []
    aer_fits = wires <= AER_MAX_WIRES or (has_ancillas and eliminated_wires <= AER_MAX_WIRES)
    for sel in steps:
        for s in shots:
            for kind in kinds:
                skip = {"exact": True, "emulator-elim": not has_ancillas, "aer": not aer_fits}.get(kind, False)
                if not skip:
                    out.append(Condition(kind, s, sel))
    return out


def make_executor(cond: Condition, backend: str, *, wires: int, cache_dir: str | None) -> Any:
    """The executor that runs the circuit under ``cond`` (None for ``exact``)."""
    if cond.kind == "exact":
        return None
    if cond.kind == "aer":
        from hardware.executor import RuntimeExecutor

        fake = backend.split(":", 1)[1]
        elim = wires > AER_MAX_WIRES
        return RuntimeExecutor(f"aer-noise:{fake}", shots=cond.shots, ancilla_elimination=elim, cache_dir=cache_dir)
    from hardware.emulator import EmulatorExecutor

    return EmulatorExecutor(
        backend,
        shots=cond.shots,
        noise=cond.kind != "shots",
        ancilla_elimination=cond.kind == "emulator-elim",
        cache_dir=cache_dir,
        dtype="float32",
    )


def pixel_change(images: Any, exact: Any) -> dict[str, float]:
    """Per-image mean ``|image - exact|`` in grey levels (of 255): its mean over images with a Student-t 95%
    interval (the images are paired by prompt and noise), and the largest single pixel change."""
    from scipy import stats

    a = ((np.asarray(images, dtype=np.float64).clip(-1, 1) + 1) * 127.5).round()
    b = ((np.asarray(exact, dtype=np.float64).clip(-1, 1) + 1) * 127.5).round()
    per = np.abs(a - b).reshape(len(a), -1).mean(1)  # (N,)
    mean = float(per.mean())
    if len(per) < 2 or per.std() == 0:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "max": float(np.abs(a - b).max()), "n": len(per)}
    half = float(stats.t.ppf(0.975, len(per) - 1) * per.std(ddof=1) / math.sqrt(len(per)))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "max": float(np.abs(a - b).max()),
            "n": len(per)}  # fmt: skip


def condition_record(cond: Condition, metrics: dict, cost: dict | None) -> dict:
    """One row of ``study.json``: the condition, its image metrics and its modelled cost per image."""
    row = {**asdict(cond), "key": cond.key, **metrics}
    if cost is not None:
        row |= {"pubs": cost["pubs"], "jobs": cost["jobs"], "shots_per_image": cost["shots"]}
        row["qpu_seconds_per_image"] = cost["qpu_time_model_s"]
    else:
        row |= {"pubs": 0, "jobs": 0, "shots_per_image": 0, "qpu_seconds_per_image": 0.0}
    return row


def save_json(path: Path, data: dict) -> None:
    """Write ``data`` atomically (a unique temporary file renamed in), so an interrupted study never leaves half."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)
