"""The critical-path study: designs where the circuit is the only way through its slot, each against its twins.

Every design is one set of ``--set`` overrides on the ``anime64`` recipe (same data, stage-1 VAE, epochs, held-out
split). Each is trained three ways, switched by ``model.qffn.branch``:

- ``q``: the circuit;
- ``c``: the classical twin, an n -> n tanh MLP with as many parameters as the circuit, in the same place;
- ``n``: the no-circuit twin, the same slot with the circuit removed (``atan`` alone).

A run is named design letter + twin letter + training seed (``Fq0``, ``Fc0``, ``Fn0``). Quantum runs are also
ablated at inference (token mean, shuffle) and their circuit outputs measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from experiments.runs import RunJob
from experiments.summary import summarize

__all__ = ["DESIGNS", "TWINS", "job", "groups", "reference", "ablation_effect", "report"]

# Small-angle initialisation keeps 16-qubit outputs spread across tokens (at uniform init they concentrate).
DESIGNS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        "F": (
            "quantum-only FFN, every transformer block",
            ("model.qffn.mode=quantum-only", "model.quantum_blocks=all", "model.qffn.weight_init=small"),
        ),
        "V": (
            "quanvolution (2x2 latent patches) after conv_in",
            ("model.quantum_blocks=none", "model.quanv_patch=2", "model.qffn.weight_init=small"),
        ),
        "B": (
            "quantum-only FFN, bottleneck only",
            ("model.qffn.mode=quantum-only", "model.quantum_blocks=bottleneck", "model.qffn.weight_init=small"),
        ),
    }
)
TWINS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"q": ("quantum", "quantum"), "c": ("classical twin", "mlp"), "n": ("no-circuit twin", "nocircuit")}
)


def job(name: str, *, vae: str) -> RunJob:
    """The :class:`RunJob` a run name describes (``Fq0``: design F, quantum, training seed 0).

    Raises:
        ValueError: On a name that is not design + twin + seed.
    """
    design, twin, seed = name[:1], name[1:2], name[2:]
    if design not in DESIGNS or twin not in TWINS or not seed.isdigit():
        raise ValueError(f"run name {name!r} must be design {sorted(DESIGNS)} + twin {sorted(TWINS)} + seed")
    sets = (f"train.seed={seed}", f"train.vae_pretrained={vae}", *DESIGNS[design][1])
    sets += (f"model.qffn.branch={TWINS[twin][1]}",)
    return RunJob(name=name, sets=sets, has_circuit=twin == "q")


def groups() -> dict[str, str]:
    """Group key (design + twin) -> label, designs in order, quantum first."""
    return {d + t: f"{DESIGNS[d][0]}: {TWINS[t][0]}" for d in DESIGNS for t in TWINS}


def reference(group: str) -> str | None:
    """Each twin is compared with the quantum model of its design."""
    return None if group[1:] == "q" else group[0] + "q"


def ablation_effect(row: dict, mode: str = "mean") -> dict | None:
    """How much an inference ablation moves a quantum run, against the noise between sampling seeds.

    Returns:
        ``{"delta_fid", "ci", "seed_spread", "ratio", "colour_changed", "pixel_change"}``: the paired FID change,
        its interval, the standard deviation of the intact model's FID over sampling seeds, the change in units of
        that spread (the target is > 5), the share of changed judged hair colours with its interval, and the mean
        pixel change in grey levels; None without an ablation report for ``mode``.
    """
    ab = (row.get("ablation") or {}).get(mode)
    if ab is None:
        return None
    spread = float(np.std(row["sets"]["fid"], ddof=1))
    delta, low, high = ab["fid"]
    return {
        "delta_fid": delta,
        "ci": [low, high],
        "seed_spread": spread,
        "ratio": delta / spread if spread > 0 else float("inf"),
        "colour_changed": ab.get("colour_changed"),
        "pixel_change": ab.get("pixel_change"),
    }


def report(results: Path) -> dict:
    """Write ``summary.json``, ``summary.md`` and ``critical_path.png`` into ``results``; returns the summary."""
    table, rows = summarize(results, groups=groups(), reference=reference)
    for r in rows:
        r["ablation_effect"] = {m: ablation_effect(r, m) for m in ("mean", "shuffle")}
    floor = {"fid": float(np.mean([r["real_fid"] for r in rows])), "hf": float(np.mean([r["real_hf"] for r in rows]))}
    out = {"groups": table, "runs": rows, "real_floor": floor}
    (results / "summary.json").write_text(json.dumps(out, indent=1))
    md = markdown(table, rows, floor)
    (results / "summary.md").write_text(md)
    plot(table, rows, results / "critical_path.png")
    return out


def _pm(mean: float, ci: float | None, digits: int, scale: float = 1.0) -> str:
    return f"{scale * mean:.{digits}f}" + (f" ± {scale * ci:.{digits}f}" if ci is not None else "")


def _diff(d: dict | None, digits: int, scale: float = 1.0) -> str:
    if d is None:
        return ""
    return f"{scale * d['delta']:+.{digits}f} [{scale * d['ci_low']:+.{digits}f}, {scale * d['ci_high']:+.{digits}f}]"


def markdown(table: list[dict], rows: list[dict], floor: dict) -> str:
    """The design x {quantum, twins} table, the seed-paired differences and the ablations, as Markdown."""
    lines = [
        "| design: model | runs | FID (held-out) | HF ratio | hair colour | Δ FID vs quantum, same seed [95%] "
        "| Δ hair colour, points |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in table:
        pv = e["paired_vs_ref"]
        lines.append(
            f"| {e['label']} | {', '.join(e['runs'])} | {_pm(e['fid'], e['fid_ci'], 2)} "
            f"| {_pm(e['hf'], e['hf_ci'], 4)} | {_pm(e['acc'], e['acc_ci'], 1, 100)}% "
            f"| {_diff(pv and pv['fid'], 2)} | {_diff(pv and pv['acc'], 1, 100)} |"
        )
    lines += [
        "",
        "| run | ablation | Δ FID [95%] | sampling-seed SD of FID | Δ / SD | hair colour changed | mean pixel change |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for mode, eff in (r.get("ablation_effect") or {}).items():
            if eff is None:
                continue
            c = eff["colour_changed"]
            colour = f"{100 * c[0]:.1f}% ({100 * c[1]:.1f}-{100 * c[2]:.1f})" if c else ""
            pixel = f"{eff['pixel_change'][0]:.2f} of 255" if eff["pixel_change"] else ""
            lines.append(
                f"| {r['run']} | {mode} | {eff['delta_fid']:+.2f} [{eff['ci'][0]:+.2f}, {eff['ci'][1]:+.2f}] "
                f"| {eff['seed_spread']:.2f} | {eff['ratio']:+.1f} | {colour} | {pixel} |"
            )
    spread = [r for r in rows if r["output_spread"]]
    if spread:
        lines += [
            "",
            "| run | circuit input std across tokens (median, max) | output std (median, max) |",
            "|---|---|---|",
        ]
        for r in spread:
            (a, b), (c, d) = r["output_spread"]["std_before"], r["output_spread"]["std_after"]
            lines.append(f"| {r['run']} | {a:.3g}, {b:.3g} | {c:.3g}, {d:.3g} |")
    lines.append(f"\nReal held-out vs reference (the floor at this N): FID {floor['fid']:.2f}, HF {floor['hf']:.4f}.")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], rows: list[dict], path: Path) -> None:
    """FID, HF ratio and hair colour per design and model (dots: training seeds), and each quantum run's ablation
    effect in units of its sampling-seed spread."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(18, 4.2))
    axes = fig.subplots(1, 4)
    colours = {"q": "tab:purple", "c": "tab:gray", "n": "tab:orange"}
    for ax, (metric, title) in zip(
        axes, (("fid", "FID vs held-out"), ("hf", "HF energy ratio"), ("acc", "hair colour"))
    ):
        for j, e in enumerate(table):
            ax.scatter([j] * len(e[f"{metric}_values"]), e[f"{metric}_values"], color=colours[e["group"][1]])
            ax.errorbar([j + 0.2], [e[metric]], yerr=[[e[f"{metric}_ci"] or 0]], fmt="s", color="k", capsize=3)
        ax.set_xticks(range(len(table)), [e["group"] for e in table])
        ax.set_title(title + " (dots: training seeds)", fontsize=9)
    ax = axes[3]
    runs = [(r["run"], m, e) for r in rows for m, e in (r.get("ablation_effect") or {}).items() if e]
    for i, (_, mode, eff) in enumerate(runs):
        ax.bar(i, eff["ratio"], color="tab:purple" if mode == "mean" else "tab:pink")
    ax.axhline(5, color="k", ls="--", lw=1, label="target: 5 x sampling-seed SD")
    ax.set_xticks(range(len(runs)), [f"{r}\n{m}" for r, m, _ in runs], fontsize=7)
    ax.set_title("ablation: Δ FID / sampling-seed SD", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
