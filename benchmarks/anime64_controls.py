"""The anime64 control study (issue 9, section 3): the 16-qubit model against controls trained the same way.

Groups, each trained with ``qldm train --preset anime64`` on the same stage-1 VAE (``train.vae_pretrained`` = the
headline run's ``vae/``, so the denoisers see the same latents) and seeds 0, 1, 2 (``train.seed``):

- ``q``: the quantum model as the preset defines it (seed 0 is the headline run itself, which trained that VAE);
- ``c``: the classical control, no Q-FFN, the mid-block FFN widened to the same parameter count
  (``model.quantum_blocks=none model.match_params=true model.match_blocks=bottleneck``);
- ``m``: the circuit replaced by the classical n -> n tanh MLP of about its size (``model.qffn.branch=mlp``);
- design levers on the quantum model: ``l`` local readout, ``s`` small-angle initialisation, ``g`` lambda's
  learning rate x10.

Each finished run is evaluated with ``qldm evaluate --run RUN --n 100 --seeds 0,1,2`` (FID against the held-out
faces, high-frequency energy ratio, captioner hair-colour accuracy), quantum groups are also ablated at inference
(``qldm ablate --run RUN --n 100 --seeds 0,1``) and their circuit outputs' spread measured (``qldm features``),
and the run's metrics, config, timings, last grid and reports are committed to
``benchmarks/results/anime64_controls/<name>/`` as soon as it finishes, so a run is never lost with the machine.
``--launch NAME:SEED:GROUP ...`` runs those jobs one after another that way.

Summary (default): per run the mean over its 3 sampling seeds; per group the mean over runs with a Student-t 95%
interval over training seeds (the unit of replication), the difference to the quantum group with Welch's 95% interval
and p-value, and paired by training seed (the same seed fixes data order and sampling noise), pooled hair-colour
accuracy with a Wilson interval; the trajectory of every lambda and the circuit's share of the squared gradient.
Writes ``summary.json``, ``summary.md`` and ``controls.png`` into the results folder and prints the table.

    python benchmarks/anime64_controls.py [--launch q1:1:q c0:0:c ...] [--results DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "anime64_controls"
GROUPS = {
    "q": ("quantum", []),
    "c": ("classical FFN, matched params", ["model.quantum_blocks=none", "model.match_params=true",
                                          "model.match_blocks=bottleneck"]),
    "m": ("n->n MLP branch", ["model.qffn.branch=mlp"]),
    # design levers (issue 9 section 3), for when the quantum branch contributes nothing
    "l": ("quantum, local readout", ["model.qffn.readout=local"]),
    "s": ("quantum, small-angle init", ["model.qffn.weight_init=small"]),
    "g": ("quantum, lambda lr x10", ["train.lr_gate=0.01"]),
}  # fmt: skip
QUANTUM = {"q", "l", "s", "g"}  # groups whose trained model is also ablated at inference
ABLATE = ["--n", "100", "--seeds", "0,1"]
EVAL = ["--n", "100", "--seeds", "0,1,2"]


def _git_commit(path: Path, message: str) -> None:
    subprocess.run(["git", "add", str(path)], cwd=ROOT, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message, "--", str(path)], cwd=ROOT, check=False)


def launch(jobs: list[str], *, work: Path, vae: Path, results: Path) -> None:
    """Train and evaluate each ``NAME:SEED:GROUP`` job in turn, committing its results as it finishes."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for job in jobs:
        name, seed, group = job.split(":")
        sets = [f"train.seed={seed}", f"train.vae_pretrained={vae}", *GROUPS[group][1]]
        run, dest = work / name, results / name
        cmd = ["qldm", "train", "--preset", "anime64", "--out", str(run), "--no-progress"]
        rc = subprocess.run([*cmd, *(a for s in sets for a in ("--set", s))], env=env).returncode
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("metrics.jsonl", "run_config.json", "timings.json"):
            if (run / f).is_file():
                shutil.copy(run / f, dest / f)
        if (run / "samples" / "epoch-003.png").is_file():
            shutil.copy(run / "samples" / "epoch-003.png", dest / "grid.png")
        if rc == 0:
            ev = work / f"{name}-eval"
            subprocess.run(["qldm", "evaluate", "--run", str(run), *EVAL, "--out", str(ev), "--no-progress"], env=env)
            for f in ("report.json", "report.md"):
                shutil.copy(ev / f, dest / f"eval_{f}")
            if group in QUANTUM:
                ab = work / f"{name}-ablate"
                cmd = ["qldm", "ablate", "--run", str(run), *ABLATE, "--out", str(ab), "--no-progress"]
                subprocess.run(cmd, env=env)
                for f in ("ablation.json", "ablation.md"):
                    shutil.copy(ab / f, dest / f)
                fm = work / f"{name}-features"  # spread of the circuit's outputs across tokens (qldm features)
                subprocess.run(["qldm", "features", "--run", str(run), "--out", str(fm), "--no-progress"], env=env)
                for f in ("features.json", "feature_maps.png"):
                    shutil.copy(fm / f, dest / f)
        _git_commit(dest, f"anime64 control study: run {name} (group {group}, seed {seed}) trained and evaluated")


def summarize(results: Path) -> dict:
    """Group table over training seeds; writes ``summary.json``/``summary.md``/``controls.png`` into ``results``."""
    from experiments.summary import summarize as group_table

    labels = {key: label for key, (label, _) in GROUPS.items()}
    table, rows = group_table(results, groups=labels, reference=lambda g: None if g == "q" else "q")
    for e in table:  # the names this study's files and tests use
        for m in ("fid", "hf", "acc"):
            e[f"{m}_vs_quantum"] = e.pop(f"{m}_vs_ref")
        e["paired_vs_quantum"] = e.pop("paired_vs_ref")
    floor = {"fid": float(np.mean([r["real_fid"] for r in rows])), "hf": float(np.mean([r["real_hf"] for r in rows]))}
    out = {"groups": table, "real_floor": floor, "runs": rows, "eval": " ".join(EVAL)}
    (results / "summary.json").write_text(json.dumps(out, indent=1))
    md = _markdown(table, floor, rows)
    (results / "summary.md").write_text(md)
    _plot(rows, table, results / "controls.png")
    print(md)
    return out


def _fmt(mean: float, ci: float | None, digits: int) -> str:
    return f"{mean:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci is not None else "")


def _fmt_vs(w: dict | None, digits: int, scale: float = 1.0) -> str:
    """``Δ [low, high] (p)`` from ``welch_diff``, or empty where there is no comparison."""
    if w is None:
        return ""
    d, lo, hi = (scale * w[k] for k in ("delta", "ci_low", "ci_high"))
    return f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] (p {w['p']:.2f})"


def _markdown(table: list[dict], floor: dict, rows: list[dict]) -> str:
    lines = [
        "| group | runs | FID (held-out) | Δ vs Q [95%] | HF ratio | Δ vs Q [95%] | hair colour | pooled (Wilson) "
        "| Δ vs Q [95%], points | final loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        lo, hi = e["acc_wilson"]
        lines.append(
            f"| {e['label']} | {len(e['runs'])} | {_fmt(e['fid'], e['fid_ci'], 2)} | {_fmt_vs(e['fid_vs_quantum'], 2)} "
            f"| {_fmt(e['hf'], e['hf_ci'], 4)} | {_fmt_vs(e['hf_vs_quantum'], 4)} "
            f"| {_fmt(100 * e['acc'], None if e['acc_ci'] is None else 100 * e['acc_ci'], 1)}% "
            f"| {100 * e['acc_pooled']:.1f}% ({100 * lo:.1f}–{100 * hi:.1f}) | {_fmt_vs(e['acc_vs_quantum'], 1, 100)} "
            f"| {_fmt(e['final_loss'], e['final_loss_ci'], 3)} |"
        )
    paired = [e for e in table if e.get("paired_vs_quantum")]
    if paired:
        lines += [
            "",
            "| group | pairs (same training seed) | Δ FID vs Q [95%] | Δ HF ratio vs Q [95%] | Δ hair colour, points |",
        ]
        lines.append("|---|---|---|---|---|")
        for e in paired:
            pv = e["paired_vs_quantum"]
            cells = [_fmt_vs(pv["fid"], 2), _fmt_vs(pv["hf"], 4), _fmt_vs(pv["acc"], 1, 100)]
            lines.append(f"| {e['label']} | {', '.join(pv['pairs'])} | " + " | ".join(cells) + " |")
    ablated = [r for r in rows if r["ablation"]]
    if ablated:
        lines += ["", "| run | ablation | delta FID [95%] | delta HF ratio [95%] | delta hair accuracy [95%] |"]
        lines.append("|---|---|---|---|---|")
        for r in ablated:
            for mode, ms in r["ablation"].items():
                keys = ("fid", "hf_ratio", "hair_accuracy")
                cells = [f"{d:+.2g} [{lo:+.2g}, {hi:+.2g}]" for d, lo, hi in (ms[k] for k in keys)]
                lines.append(f"| {r['run']} | {mode} | " + " | ".join(cells) + " |")
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
    lines.append(
        f"\nReal held-out vs reference (the floor at this N): FID {floor['fid']:.2f}, HF ratio {floor['hf']:.4f}."
    )
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], table: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure  # a file only: no pyplot state, no backend chosen

    fig = Figure(figsize=(22, 4))
    axes = fig.subplots(1, 5)
    colours = {"q": "tab:purple", "c": "tab:gray", "m": "tab:orange", "l": "tab:green", "s": "tab:blue", "g": "tab:red"}
    for i, (metric, title) in enumerate(
        [("fid", "FID vs held-out"), ("hf", "HF energy ratio"), ("acc", "hair colour")]
    ):
        ax = axes[i]
        for j, e in enumerate(table):
            for r in (r for r in rows if r["group"] == e["group"]):  # sampling seeds: the noise within one model
                ax.scatter([j - 0.15] * len(r["sets"][metric]), r["sets"][metric], marker="x", s=12, color="0.5")
            ax.scatter([j] * len(e[f"{metric}_values"]), e[f"{metric}_values"], color=colours[e["group"]])
            ax.errorbar([j + 0.15], [e[metric]], yerr=[[e[f"{metric}_ci"] or 0]], fmt="s", color="k", capsize=4)
        ax.set_xticks(range(len(table)), [e["label"] for e in table], rotation=15, fontsize=8)
        ax.set_title(title + " (dots: training seeds, x: sampling seeds)", fontsize=9)
    for r in rows:
        for lam in r["lambda"].values():
            axes[3].plot(r["steps"], lam, color=colours[r["group"]], alpha=0.8, label=r["run"])
        share = [(s, v) for s, v in zip(r["steps"], r["grad_share"], strict=True) if v is not None]
        if share:
            axes[4].semilogy(*zip(*share, strict=True), color=colours[r["group"]], alpha=0.6, label=r["run"])
    axes[3].set(title="gate lambda", xlabel="step")
    axes[4].set(title="branch share of |grad|^2", xlabel="step")
    for ax in axes[3:]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launch", nargs="*", default=[], metavar="NAME:SEED:GROUP", help="train+evaluate these jobs")
    p.add_argument("--work", type=Path, default=Path("/tmp/ctl"), help="run folders (not committed)")
    p.add_argument("--vae", type=Path, default=Path("/tmp/anime64/run/vae"), help="the shared stage-1 VAE")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.launch:
        launch(args.launch, work=args.work, vae=args.vae, results=args.results)
    summarize(args.results)


if __name__ == "__main__":
    main(sys.argv[1:])
