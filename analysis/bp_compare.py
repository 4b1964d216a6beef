"""Our gradient-variance points against a reference set (the paper's data, or the 2-design limit).

Points on both sides are dicts with ``design``, ``n_qubits``, ``n_layers``, ``variance``, ``ci_low`` and ``ci_high``
(95 % intervals, as :func:`analysis.gradvar.variance_ci` gives). Used by ``benchmarks/compare_bp_paper.py``.
"""

from __future__ import annotations

import numpy as np

from analysis.gradvar import fit_slope

__all__ = ["haar_variance", "compare_points", "compare_slopes", "against_haar"]

Z95 = 1.96


def haar_variance(n_qubits: int | np.ndarray) -> float | np.ndarray:
    """Var[d<Z0 Z1>/d theta_{1,1}] of the baseline when everything after the first rotation is a unitary 2-design.

    With U Haar on d = 2**n dimensions and traceless A, O: E[Tr(A U'OU) ** 2] = Tr(A**2) Tr(O**2) / (d**2 - 1). Here
    A = -(i/2)[V, rho], rho the first rotation applied to |+>^n, so Tr(A**2) = (1 - <V>**2) / 2: 0 for an X axis
    (|+> is its eigenstate) and 1/2 for Y or Z; averaged over the axis 1/3. With Tr(O**2) = d this gives
    d / (3 (d**2 - 1)): the deep-circuit limit, about 2**-n / 3 (``tests/test_compare_bp_paper.py`` checks it against
    Haar-random unitaries by Monte Carlo).
    """
    d = 2.0 ** np.asarray(n_qubits, dtype=float)
    return d / (3 * (d**2 - 1))


def _log_sigma(low: float, high: float) -> float:
    """Standard error of ln Var from a 95 % interval (the same reading as :func:`analysis.gradvar.fit_slope`)."""
    return (np.log(high) - np.log(low)) / (2 * Z95) if low > 0 and high > 0 else float("nan")


def compare_points(ours: list[dict], paper: list[dict]) -> list[dict]:
    """One row per (design, n, L) present on both sides (see the module docstring for the columns)."""
    theirs = {(p["design"], p["n_qubits"], p["n_layers"]): p for p in paper}
    rows = []
    for p in sorted(ours, key=lambda p: (p["design"], p["n_layers"], p["n_qubits"])):
        q = theirs.get((p["design"], p["n_qubits"], p["n_layers"]))
        if q is None:
            continue
        ratio = p["variance"] / q["variance"]
        sigma = float(np.hypot(_log_sigma(p["ci_low"], p["ci_high"]), _log_sigma(q["ci_low"], q["ci_high"])))
        rows.append(
            {
                "design": p["design"],
                "n_qubits": p["n_qubits"],
                "n_layers": p["n_layers"],
                "ours": [p["variance"], p["ci_low"], p["ci_high"]],
                "paper": [q["variance"], q["ci_low"], q["ci_high"]],
                "ratio": ratio,
                "ratio_ci": [ratio * np.exp(-Z95 * sigma), ratio * np.exp(Z95 * sigma)],
                "paper_in_our_ci": bool(p["ci_low"] <= q["variance"] <= p["ci_high"]),
                "z": float(np.log(ratio) / sigma) if sigma > 0 else float("nan"),
                "ours_exact": bool(p.get("exact", True)),
                "haar": float(haar_variance(p["n_qubits"])) if p["design"] == "none" else None,
            }
        )
    return rows


def _fit(n: list[int], triples: list[list[float]]) -> dict | None:
    v, lo, hi = (np.array([t[k] for t in triples]) for k in range(3))
    fit = fit_slope(np.array(n), v, lo, hi)
    if fit is None:
        return None
    ok = v > 0
    poly = float(np.polyfit(np.array(n)[ok], np.log(v[ok]), 1)[0]) if ok.sum() >= 2 else None
    return {"slope": fit[0], "stderr": fit[1], "intercept": fit[2], "polyfit_slope": poly, "n": list(map(int, n))}


def _pooled(log_ratio: np.ndarray, sigma: np.ndarray) -> dict:
    """Inverse-variance mean of per-point ln ratios (with its 95 % interval) and the chi-square of the points against
    ratio 1: does one side sit systematically above the other, and do the points agree within their intervals?"""
    from scipy.stats import chi2

    w = 1 / sigma**2
    mean, se = float((w * log_ratio).sum() / w.sum()), float(1 / np.sqrt(w.sum()))
    c2 = float(((log_ratio / sigma) ** 2).sum())
    ci = [float(np.exp(mean - Z95 * se)), float(np.exp(mean + Z95 * se))]
    return {"ratio": float(np.exp(mean)), "ci": ci, "chi2": c2, "dof": len(sigma), "p": float(chi2.sf(c2, len(sigma)))}


def compare_slopes(rows: list[dict], min_points: int = 3) -> dict[str, dict]:
    """Slopes of ln Var against n, ours and the paper's, over the same n, per ``design|L<layers>``.

    Args:
        rows: From :func:`compare_points`.
        min_points: Fewest common n to fit.

    Returns:
        ``{"design|L": {"ours": fit, "paper": fit, "z": (ours - paper) / combined stderr}}``; each fit holds
        ``slope``, ``stderr``, ``intercept``, ``polyfit_slope`` (unweighted, the paper's method) and ``n``.
    """
    out: dict[str, dict] = {}
    for design, layers in sorted({(r["design"], r["n_layers"]) for r in rows}):
        sel = [r for r in rows if r["design"] == design and r["n_layers"] == layers]
        n = [r["n_qubits"] for r in sel]
        sig = {k: np.array([_log_sigma(*r[k][1:]) for r in sel]) for k in ("ours", "paper")}
        entry = out[f"{design}|L{layers}"] = {"n": n, "ours": None, "paper": None, "z": None, "haar_slope": None}
        entry["pooled"] = _pooled(np.log([r["ratio"] for r in sel]), np.hypot(sig["ours"], sig["paper"]))
        if design == "none":  # each side against the 2-design limit, with its own interval only
            h = haar_variance(np.array(n, dtype=float))
            for k in ("ours", "paper"):
                entry[f"{k}_vs_haar"] = _pooled(np.log([r[k][0] for r in sel] / h), sig[k])
        ours, paper = _fit(n, [r["ours"] for r in sel]), _fit(n, [r["paper"] for r in sel])
        if len(sel) >= min_points and ours and paper:
            entry.update(ours=ours, paper=paper)
            entry["z"] = (ours["slope"] - paper["slope"]) / float(np.hypot(ours["stderr"], paper["stderr"]))
            if design == "none":
                entry["haar_slope"] = float(np.polyfit(n, np.log(haar_variance(np.array(n))), 1)[0])
    return out


def against_haar(points: list[dict], max_n: int | None = None) -> dict[int, dict]:
    """Baseline points of one side against the 2-design limit, per depth: the pooled ratio Var / limit (95 %) and
    the chi-square of ln(Var / limit) over the points' own intervals (see :func:`_pooled`).

    Args:
        points: Points with ``design``, ``n_qubits``, ``n_layers``, ``variance``, ``ci_low``, ``ci_high``.
        max_n: Use only ``n_qubits <= max_n`` (deep enough circuits for the limit to hold).

    Returns:
        ``{n_layers: pooled}`` for the ``"none"`` design.
    """
    out: dict[int, dict] = {}
    for layers in sorted({p["n_layers"] for p in points if p["design"] == "none"}):
        sel = [p for p in points if p["design"] == "none" and p["n_layers"] == layers]
        sel = [p for p in sel if max_n is None or p["n_qubits"] <= max_n]
        if sel:
            lr = np.log([p["variance"] / haar_variance(p["n_qubits"]) for p in sel])
            out[layers] = _pooled(lr, np.array([_log_sigma(p["ci_low"], p["ci_high"]) for p in sel]))
    return out
