"""Plots of the analysis results; every function returns the figure and optionally saves it.

The figures are pyplot figures, so a notebook shows them inline; the backend is left to the caller (scripts that only
save files run headless on matplotlib's default Agg fallback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_variance", "plot_depth", "series"]


def series(points: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Group points by ``(design, n_layers)``, each list sorted by qubit count."""
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for p in points:
        out.setdefault((p["design"], int(p["n_layers"])), []).append(p)
    return {k: sorted(v, key=lambda p: p["n_qubits"]) for k, v in sorted(out.items())}


def plot_variance(result: Any, path: str | Path | None = None, *, title: str | None = None) -> Any:
    """Semilog plot of Var[d<O>/d theta_1] against qubits: one line per design x layers, fitted slopes in the legend.

    Estimated (branch-sampled) points are drawn hollow; error bars are the bootstrap intervals.

    Args:
        result: An :class:`analysis.results.StudyResult`.
        path: Where to save the PNG (optional).
        title: Figure title.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt  # pyplot, so a notebook shows the figure inline

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (design, layers), pts in series(result.points).items():
        n = np.array([p["n_qubits"] for p in pts])
        v = np.array([p["variance"] for p in pts])
        lo = np.array([p["ci_low"] for p in pts])
        hi = np.array([p["ci_high"] for p in pts])
        fit = result.fits.get(f"{design}|L{layers}")
        label = f"{design}, L={layers}"
        if fit:
            label += f": slope {fit['slope']:.2f}±{1.96 * fit['stderr']:.2f}"
        pos = v > 0
        err = np.stack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])[:, pos]
        line = ax.errorbar(n[pos], v[pos], yerr=err, marker="o", capsize=3, label=label)
        est = np.array([not p["exact"] for p in pts]) & pos
        if est.any():
            ax.plot(n[est], v[est], "o", mfc="white", mec=line[0].get_color(), ms=8)
        if fit:
            xs = np.linspace(n.min(), n.max(), 50)
            ax.plot(xs, np.exp(fit["intercept"] + fit["slope"] * xs), "--", color=line[0].get_color(), lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("data qubits n")
    ax.set_ylabel(r"Var[$\partial\langle O\rangle/\partial\theta_1$]")
    ax.set_title(title or "Gradient variance (hollow: branch-sampled estimate)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_depth(result: Any, path: str | Path | None = None, *, title: str | None = None) -> Any:
    """Semilog plot of Var[d<O>/d theta_1] against layers: one panel per design, one line per qubit count.

    The depth sweep shows where each n reaches its plateau: a baseline line flattens once the circuit is deep enough
    to be a 2-design, at a value that falls with n; the ancilla design's lines should not separate.

    Args:
        result: An :class:`analysis.results.StudyResult` with several ``n_layers`` per (design, n).
        path: Where to save the PNG (optional).
        title: Figure title.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt  # pyplot, so a notebook shows the figure inline

    designs = sorted({p["design"] for p in result.points})
    fig, axes = plt.subplots(1, len(designs), figsize=(6 * len(designs), 4.5), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    qubits = sorted({int(p["n_qubits"]) for p in result.points})
    for ax, design in zip(axes[0], designs, strict=True):
        for i, n in enumerate(qubits):
            pts = sorted(
                (p for p in result.points if p["design"] == design and int(p["n_qubits"]) == n and p["variance"] > 0),
                key=lambda p: p["n_layers"],
            )
            if not pts:
                continue
            L = np.array([p["n_layers"] for p in pts])
            v = np.array([p["variance"] for p in pts])
            err = np.stack(
                [np.clip(v - [p["ci_low"] for p in pts], 0, None), np.clip([p["ci_high"] for p in pts] - v, 0, None)]
            )
            colour = cmap(i / max(len(qubits) - 1, 1))
            ax.errorbar(L, v, yerr=err, marker="o", ms=3, capsize=2, color=colour, label=f"n={n}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("layers L")
        ax.set_title(f"{design}")
        ax.legend(fontsize=7, ncol=2)
    axes[0][0].set_ylabel(r"Var[$\partial\langle O\rangle/\partial\theta_1$]")
    fig.suptitle(title or "Gradient variance against depth")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
