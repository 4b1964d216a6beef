"""``qldm hardware study``: sample a trained model under every condition of :mod:`hardware.study` and measure it.

Writes ``OUT/<condition>/`` (the images, as ``qldm sample`` sets), ``OUT/study.json`` (per condition FID against
the held-out faces, HF ratio, hair colour, pixel change against exact, PUBs, shots and modelled QPU seconds per
image), ``OUT/study.png`` (FID and pixel change against shots, a line per condition kind and step selector) and
``OUT/grid.png`` (the same seeds under each condition).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hardware.study import (
    Condition,
    condition_record,
    conditions,
    make_executor,
    pixel_change,
    save_json,
    steps_selector,
)

__all__ = ["run_study", "plot_study", "draw_study"]

MIN_FID_IMAGES = 16  # below this the FID's covariance is too degenerate for its matrix square root


def _check_model(cfg: Any) -> None:
    if not cfg.model.uses_circuit:
        raise ValueError(
            "the run's model has no circuit (no Q-FFN or quanvolution runs one): nothing to put on a device"
        )


def _metrics(images: Any, prompts: list[str], *, source: str, size: int, exact: Any, extractor, reference) -> dict:
    from qldm.eval.attributes import hair_colour_accuracy, judge_for_source
    from qldm.eval.fid import feature_statistics, frechet_distance
    from qldm.eval.spectrum import high_frequency_ratio

    fid = None
    if len(images) >= MIN_FID_IMAGES:
        try:
            fid = float(frechet_distance(*feature_statistics(reference), *feature_statistics(extractor(images))))
        except ValueError as err:  # near-identical images: the covariance has no real square root; keep the rest
            logging.getLogger(__name__).warning("FID left out: %s", err)
    attrs = hair_colour_accuracy(images, prompts, judge=judge_for_source(source))
    return {
        "fid": fid,
        "hf_ratio": float(high_frequency_ratio(images)),
        "hair_accuracy": float(attrs.accuracy) if attrs.accuracy is not None else None,
        "pixel_change": pixel_change(images, exact),
        "n": len(images),
    }


def run_study(
    run: str | Path,
    *,
    backend: str,
    kinds: list[str],
    shots: list[int],
    steps: list[str],
    n: int,
    out: str | Path,
    seed: int = 0,
    batch_size: int = 50,
    show_progress: bool = True,
) -> dict:
    """Sample ``n`` images of ``run`` under every condition and write the study (see the module docstring).

    Args:
        run: A finished run folder.
        backend: ``fake:<FakeName>`` (or ``ibm:<device>``, confirmed by the caller) whose calibration the emulator uses.
        kinds, shots, steps: The conditions (:func:`hardware.study.conditions`).
        n: Images per condition (the same prompts and noise in each).
        out: The study folder.
        seed: Sampling seed.
        batch_size: Images per pipeline call.
        show_progress: A bar over conditions.

    Raises:
        ValueError: If the model has no circuit, or the backend has no calibration data.
    """
    from tqdm.auto import tqdm

    from hardware.backends import resolve_backend
    from hardware.sampling import attach_hardware, plan
    from qldm.eval.features import make_extractor
    from qldm.eval.sources import (
        evaluation_prompts,
        load_image_set,
        load_run,
        reference_images,
        sample_images,
        save_image_set,
    )

    pipe, cfg = load_run(run)
    _check_model(cfg)
    if not resolve_backend(backend).has_calibration:
        raise ValueError(f"{backend} has no calibration data; the device study needs fake:<FakeName> or ibm:<device>")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = cfg.model.qffn.spec()
    k = len(spec.ancilla_qubits)
    conds = conditions(kinds, shots, steps, wires=spec.num_qubits, eliminated_wires=spec.num_qubits - k,
                       has_ancillas=k > 0)  # fmt: skip
    if conds[0].kind != "exact":
        conds.insert(0, Condition("exact"))  # every pixel change is measured against it
    total, source, size = cfg.sample.steps, cfg.data.source, cfg.data.image_size
    prompts = evaluation_prompts(source, n)
    extractor = make_extractor(None)
    reference = extractor(reference_images(source, prompts, image_size=size, seed=10_000))
    cache = str(out / "hardware-cache")
    rows, sets = [], {}
    for cond in tqdm(conds, desc="conditions", disable=not show_progress):
        folder = out / cond.key
        meta = folder / "set.json"
        if meta.is_file() and json_n(meta) == n:
            images, _, _ = load_image_set(folder)  # finished before an interruption: reuse
        else:
            on_step = None
            if cond.kind != "exact":
                executor = make_executor(cond, backend, wires=spec.num_qubits, cache_dir=cache)
                on_step = attach_hardware(pipe, backend, blocks="all", steps=steps_selector(cond.steps),
                                          total_steps=total, executor=executor, confirm=True)  # fmt: skip
            try:
                images = sample_images(pipe, prompts, seed=seed, steps=total, guidance=cfg.sample.guidance,
                                       batch_size=batch_size, on_step_begin=on_step)  # fmt: skip
            finally:
                if on_step is not None:
                    on_step(-1, 0)  # every block back on its own exact executor
            save_image_set(images, prompts, folder, condition=cond.key, seed=seed, image_size=size, n=n)
            images, _, _ = load_image_set(folder)  # measure the 8-bit images as saved, as a rerun will
        sets[cond.key] = images
        cost = None
        if cond.kind != "exact":
            cost = plan(cfg.model, backend, blocks="all", steps=steps_selector(cond.steps), total_steps=total,
                        shots=cond.shots, ancilla_elimination=cond.kind in ("emulator-elim",))  # fmt: skip
        metrics = _metrics(images, prompts, source=source, size=size, exact=sets["exact"], extractor=extractor,
                           reference=reference)  # fmt: skip
        rows.append(condition_record(cond, metrics, cost))
    study = {
        "emulator_vs_aer": _emulator_vs_aer(sets, conds),
        "run": str(run),
        "backend": backend,
        "n": n,
        "seed": seed,
        "sample_steps": total,
        "circuit": spec.name,
        "wires": spec.num_qubits,
        "qpu_time_note": "modelled: jobs*2 s + shots*(circuit duration + 250 us rep delay), not measured",
        "conditions": rows,
    }
    save_json(out / "study.json", study)
    plot_study(study, out / "study.png")
    _grid(sets, out / "grid.png")
    return study


def _emulator_vs_aer(sets: dict[str, Any], conds: list[Condition]) -> list[dict]:
    """Where Aer ran, how far the emulator's images are from Aer's, beside how far exact-with-shots images are
    (same shots and steps; the Aer images are the reference), paired by prompt and noise."""
    keys = {c.key for c in conds}
    out = []
    for c in conds:
        if c.kind != "aer":
            continue
        row = {"shots": c.shots, "steps": c.steps, "aer": c.key}
        for kind in ("emulator", "emulator-elim", "shots"):
            key = Condition(kind, c.shots, c.steps).key
            if key in keys:
                row[f"{kind}_vs_aer"] = pixel_change(sets[key], sets[c.key])
        out.append(row)
    return out


def json_n(meta: Path) -> int | None:
    """The image count a finished condition's ``set.json`` records."""
    import json

    return json.loads(meta.read_text()).get("n")


def plot_study(study: dict, path: Path) -> None:
    """Write :func:`draw_study`'s figure to ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    draw_study(study, fig)
    fig.savefig(path, dpi=110)


def draw_study(study: dict, fig: Any) -> None:
    """FID and mean pixel change against shots (log axis), one line per condition kind and step selector, and the
    exact model's FID as a horizontal line, drawn into ``fig`` (a pyplot figure shows inline in a notebook)."""
    ax_fid, ax_pix = fig.subplots(1, 2)
    rows = study["conditions"]
    exact = next(r for r in rows if r["kind"] == "exact")
    lines: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["kind"] != "exact":
            lines.setdefault((r["kind"], r["steps"]), []).append(r)
    for (kind, steps), rs in sorted(lines.items()):
        rs = sorted(rs, key=lambda r: r["shots"])
        shots = [r["shots"] for r in rs]
        if all(r["fid"] is not None for r in rs):
            ax_fid.plot(shots, [r["fid"] for r in rs], marker="o", label=f"{kind}, steps {steps}")
        pix = [r["pixel_change"] for r in rs]
        ax_pix.errorbar(
            shots,
            [p["mean"] for p in pix],
            yerr=[[p["mean"] - p["ci_low"] for p in pix], [p["ci_high"] - p["mean"] for p in pix]],
            marker="o",
            capsize=3,
            label=f"{kind}, steps {steps}",
        )
    if exact["fid"] is not None:
        ax_fid.axhline(exact["fid"], color="k", ls="--", lw=1, label="exact")
    ax_fid.set(xscale="log", xlabel="shots per circuit evaluation", ylabel="FID vs held-out faces")
    ax_fid.set_title(study["backend"])
    ax_pix.set(xscale="log", xlabel="shots per circuit evaluation", ylabel="mean |image - exact| (grey levels)")
    ax_pix.set_title(f"{study['circuit']}, {study['n']} images", fontsize=9)
    for ax in (ax_fid, ax_pix):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()


def _grid(sets: dict[str, Any], path: Path, columns: int = 8) -> None:
    """One row per condition, the same first ``columns`` prompts and noise in each, labelled on the left."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.2 * columns + 2.2, 1.2 * len(sets)))
    axes = fig.subplots(len(sets), columns, squeeze=False)
    for row, (key, images) in enumerate(sets.items()):
        for col in range(columns):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(images):
                ax.imshow((np.asarray(images[col]).transpose(1, 2, 0).clip(-1, 1) + 1) / 2)
        axes[row, 0].set_ylabel(key, rotation=0, ha="right", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
