"""Our barren-plateau study against the paper's own data (Yao & Hasegawa, PRA 111, 022426; issue 13).

Usage::

    # once, from their repository's database (not committed here): the derived per-point reference JSON
    python benchmarks/compare_bp_paper.py --paper-data /tmp/bpp/data.db \
        --paper-figures /tmp/bpp/experiment.py --write-reference benchmarks/results/bp_paper_reference.json
    # the comparison (the committed reference JSON, or the database again)
    python benchmarks/compare_bp_paper.py --paper-data benchmarks/results/bp_paper_reference.json \
        --ours benchmarks/results/bp_ex2_1.json [benchmarks/results/bp_depth.json]

The paper's data are ``barren/data.db`` of github.com/utai-utai/barren_plateau (table ``single``: one row per
``(modified, qubit, layer)`` with 100 per-circuit gradients d<Z0 Z1>/d theta_{1,1} and their ``np.var``); the older
``barren/detail_data.db`` (table ``details``, the same gradients) and ``detail_data.csv`` (n <= 6, L <= 50) load too.
``modified`` 0 is our ``none`` design and 1 our ``per-qubit`` one. Their variance is ``np.var`` (ddof 0); here both
sides use ddof 1 and the same percentile bootstrap (:func:`analysis.gradvar.variance_ci`, whole circuits resampled),
so the ratio compares like with like; the published ddof-0 value is kept in the reference JSON.

For every (design, n, L) in both, the table gives both variances with their 95 % intervals, the ratio ours/paper
with an interval (the two log-scale bootstrap widths added in quadrature), whether the paper's value lies in our
interval and z = ln(ratio) / sigma. Per (design, L) both slopes of ln Var against n are fitted the same way
(:func:`analysis.gradvar.fit_slope`, weighted by the bootstrap intervals) over the n both have, with the z of their
difference; the unweighted ``np.polyfit`` the paper's figure uses is shown beside them. Output: the table on stdout,
``results/bp_paper_comparison.json`` and ``results/bp_paper_comparison.png``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.bp_compare import Z95, against_haar, compare_points, compare_slopes, haar_variance  # noqa: E402
from analysis.gradvar import variance_ci  # noqa: E402
from analysis.results import StudyResult, utc_now  # noqa: E402

PAPER_REPO = "utai-utai/barren_plateau"
PAPER_COMMIT = "898de0f94248bce3d6f7e6d35158d9be7570f8db"  # their HEAD (2024-06-25), the one read here
DESIGN_OF_MODIFIED = {0: "none", 1: "per-qubit"}

Key = tuple[str, int, int]  # (design, n_qubits, n_layers)


def load_paper_gradients(path: str | Path) -> dict[Key, np.ndarray]:
    """Per-circuit gradients of the paper's database or CSV.

    Args:
        path: ``barren/data.db`` (table ``single``), ``barren/detail_data.db`` (table ``details``) or
            ``detail_data.csv``.

    Returns:
        ``{(design, n, L): (N,) gradients}``.

    Raises:
        ValueError: If the file has neither table nor the CSV columns.
    """
    path = Path(path)
    rows: list[tuple[int, int, int, str]] = []
    if path.suffix == ".csv":
        csv.field_size_limit(1 << 30)  # one field holds a JSON list of 100 gradients
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows.append((int(r["modified"] in ("True", "1")), int(r["qubit"]), int(r["layer"]), r["gradients"]))
    else:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            table = next((t for t in ("single", "details") if t in tables), None)
            if table is None:
                raise ValueError(f"{path}: no table 'single' or 'details' (found {sorted(tables)})")
            rows = list(con.execute(f"SELECT modified, qubit, layer, gradients FROM {table}"))
        finally:
            con.close()
    if not rows:
        raise ValueError(f"{path}: no gradient rows")
    return {(DESIGN_OF_MODIFIED[int(m)], int(q), int(lay)): np.asarray(json.loads(g), float) for m, q, lay, g in rows}


def paper_reference(grads: dict[Key, np.ndarray], source: dict, *, n_boot: int = 1000) -> dict:
    """The derived reference: per point the ddof-1 variance with its bootstrap interval, and the published ddof-0 one.

    Args:
        grads: From :func:`load_paper_gradients`.
        source: Attribution (repository, commit, file, sha256), stored as is.
        n_boot: Bootstrap resamples per point.

    Returns:
        A JSON-able dict with ``source``, ``setting`` and ``points``.
    """
    points = []
    for (design, n, layers), g in sorted(grads.items()):
        v, lo, hi = variance_ci(g, n_boot=n_boot, seed=0)
        points.append(
            {
                "design": design,
                "n_qubits": n,
                "n_layers": layers,
                "samples": int(g.size),
                "variance": v,
                "ci_low": lo,
                "ci_high": hi,
                "published_variance": float(np.var(g)),  # their np.var, ddof 0: the value in their plots
                "mean_grad": float(g.mean()),
                "zero_gradients": int((np.abs(g) < 1e-12).sum()),  # an X-axis first gate leaves |+> alone: ~1/3
            }
        )
    setting = (
        "Var over N random circuits of d<Z0 Z1>/d theta_{1,1}; H on every wire, then L layers of a rotation per data "
        "qubit (axis uniform in X, Y, Z; angle U[0, 2pi); modified: CRX/CRY/CRZ controlled by ancilla i+n) and a CZ "
        "chain on the data qubits; PennyLane default.qubit, analytic parameter shift; unseeded numpy draws"
    )
    return {"source": source, "setting": setting, "created": utc_now(), "points": points}


def load_paper(path: str | Path, *, n_boot: int = 1000) -> dict:
    """The reference from its JSON, or derived from the paper's database or CSV (see :func:`paper_reference`)."""
    path = Path(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    source = {
        "repo": PAPER_REPO,
        "commit": PAPER_COMMIT,
        "file": {"data.db": "barren/data.db", "detail_data.db": "barren/detail_data.db"}.get(path.name, path.name),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    return paper_reference(load_paper_gradients(path), source, n_boot=n_boot)


def published_figures(experiment_py: str | Path, points: list[dict]) -> dict:
    """The numbers their figures plot (literal lists in their ``barren/experiment.py``, read with ``ast``, never run),
    matched against the database's ddof-0 variances.

    ``ex2_2`` (variance against L) holds 9 x 11 lists ``original_data``, ``modified_data`` and ``proposed_data`` (n =
    2..18 by the module's ``layers``); ``ex2_1`` (variance against n, the headline figure) holds ``qubits`` and
    ``*_variance``. Returns which list entries equal a database value, the slopes the ex2_1 legend prints
    (``np.polyfit`` of ln Var on n, unweighted) and the ``proposed`` values, which have no data or code behind them.
    """
    import ast

    lists: dict[str, list] = {}
    for node in ast.walk(ast.parse(Path(experiment_py).read_text())):
        if isinstance(node, ast.FunctionDef) and node.name in ("ex2_1", "ex2_2"):
            for st in node.body:
                if (
                    isinstance(st, ast.Assign)
                    and isinstance(st.targets[0], ast.Name)
                    and isinstance(st.value, ast.List)
                ):
                    lists[f"{node.name}.{st.targets[0].id}"] = ast.literal_eval(st.value)
        elif isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "layers":
            lists["layers"] = ast.literal_eval(node.value)
    db = {(q["design"], q["n_qubits"], q["n_layers"]): q["published_variance"] for q in points}
    out: dict = {"file": "barren/experiment.py", "layers": lists["layers"]}
    for name, design in (("original", "none"), ("modified", "per-qubit")):
        grid = lists[f"ex2_2.{name}_data"]
        keys = [(design, 2 + 2 * i, L) for i, row in enumerate(grid) for L in lists["layers"][: len(row)]]
        vals = [v for row in grid for v in row]
        out[f"ex2_2_{design}_equal_to_db"] = [sum(db.get(k) == v for k, v in zip(keys, vals)), len(vals)]
        fig = lists[f"ex2_1.{name}_variance"]
        out[f"ex2_1_{design}_layers"] = sorted({k[2] for k, v in zip(keys, vals) if v in fig})
        out[f"ex2_1_{design}_polyfit_slope"] = float(np.polyfit(lists["ex2_1.qubits"], np.log(fig), 1)[0])
    out["proposed_ex2_2"] = lists["ex2_2.proposed_data"]
    out["proposed_ex2_1"] = {"qubits": lists["ex2_1.qubits"], "variance": lists["ex2_1.proposed_variance"]}
    out["ex2_1_proposed_layers"] = sorted(
        {
            L
            for row in lists["ex2_2.proposed_data"]
            for L, v in zip(lists["layers"], row)
            if v in out["proposed_ex2_1"]["variance"]
        }
    )
    return out


def load_ours(paths: list[str | Path], observable: str = "z0z1", seed: int = 0) -> list[dict]:
    """Points of one master seed in our study JSON files (later files replace earlier points with the same key)."""
    by_key: dict[str, dict] = {}
    for path in paths:
        for p in StudyResult.load(path).points:
            if p["observable"] == observable and p["seed"] == seed:
                by_key[p["key"]] = p
    return list(by_key.values())


def format_report(rows: list[dict], slopes: dict[str, dict]) -> str:
    """The per-point table and the slopes as plain text."""
    head = (
        f"{'design':>9} {'L':>4} {'n':>3} {'ours Var':>9} {'ours 95% CI':>21} {'paper Var':>9} {'paper 95% CI':>21} "
        f"{'ours/paper':>10} {'ratio 95% CI':>13} {'in CI':>5} {'z':>5} {'ours/Haar':>9} {'paper/Haar':>10}"
    )
    lines = [head]
    for r in rows:
        o, p, rc, mark = r["ours"], r["paper"], r["ratio_ci"], " " if r["ours_exact"] else "*"
        lines.append(
            f"{r['design']:>9} {r['n_layers']:>4} {r['n_qubits']:>3}{mark}{o[0]:>9.3e} [{o[1]:.2e}, {o[2]:.2e}] "
            f"{p[0]:>9.3e} [{p[1]:.2e}, {p[2]:.2e}] {r['ratio']:>10.2f} [{rc[0]:>4.2f}, {rc[1]:>5.2f}] "
            f"{'yes' if r['paper_in_our_ci'] else 'NO':>5} {r['z']:>+5.1f}"
            + (f" {o[0] / r['haar']:>9.2f} {p[0] / r['haar']:>10.2f}" if r["haar"] else "")
        )
    lines.append(
        "\nper series: slopes of ln Var per qubit over the common n (weighted fit ± 95 %; [unweighted polyfit]);"
    )
    lines.append("pooled ratio (inverse-variance mean of ln ratios, 95 %) and chi2 of the points against ratio 1")
    for key, s in slopes.items():
        o, p, pr = s["ours"], s["paper"], s["pooled"]
        lines.append(f"  {key:>14} (n = {s['n'][0]}..{s['n'][-1]}, {len(s['n'])} points)")
        if o:
            lines.append(
                f"{'':>18}slope ours {o['slope']:+.3f} ± {Z95 * o['stderr']:.3f} [{o['polyfit_slope']:+.3f}], paper "
                f"{p['slope']:+.3f} ± {Z95 * p['stderr']:.3f} [{p['polyfit_slope']:+.3f}], z {s['z']:+.1f}"
                + (f", 2-design limit {s['haar_slope']:+.3f}" if s["haar_slope"] is not None else "")
            )
        for name, q in (
            ("ours/paper", pr),
            ("ours/Haar", s.get("ours_vs_haar")),
            ("paper/Haar", s.get("paper_vs_haar")),
        ):
            if q:
                lines.append(
                    f"{'':>18}{name:<10} {q['ratio']:.2f} [{q['ci'][0]:.2f}, {q['ci'][1]:.2f}], "
                    f"chi2 {q['chi2']:.1f} / {q['dof']} (p = {q['p']:.2g})"
                )
    lines.append("*: our point is a branch-sampled estimate (older engine), not exact")
    lines.append("Haar: the deep-circuit (2-design) value d / (3 (d^2 - 1)), d = 2^n; only meaningful where L is large")
    return "\n".join(lines)


def plot_comparison(rows: list[dict], slopes: dict[str, dict], path: str | Path, layers: list[int] | None = None):
    """Variance against n (ours filled with fitted lines, the paper's hollow), the ratio against n, and, with more
    than one depth, variance against L. Returns the figure."""
    import matplotlib as mpl
    from matplotlib.figure import Figure  # a file only: no pyplot state, no backend chosen

    depths = sorted({r["n_layers"] for r in rows})
    default = depths if len(depths) <= 3 else [L for L in (5, 50, 500) if L in depths] or depths[:: len(depths) // 3]
    shown = [L for L in (layers or default) if L in depths]  # a depth sweep's 11 series would hide each other
    fig = Figure(figsize=(16 if len(depths) > 1 else 11, 4.8))
    axes = fig.subplots(1, 3 if len(depths) > 1 else 2)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    series = [(d, L) for d in ("none", "per-qubit") for L in shown if any(r["design"] == d for r in rows)]
    for i, (design, L) in enumerate(series):
        sel = [r for r in rows if r["design"] == design and r["n_layers"] == L]
        if not sel:
            continue
        c = colors[i % len(colors)]
        n = np.array([r["n_qubits"] for r in sel], float)
        for side, dx, mfc in (("ours", -0.12, c), ("paper", 0.12, "white")):
            v = np.array([r[side] for r in sel])
            err = np.abs(v[:, 1:].T - v[:, 0])
            fit = slopes.get(f"{design}|L{L}", {}).get(side)
            lab = f"{side}, {design}, L={L}" + (f": {fit['slope']:+.2f}/qubit" if fit else "")
            axes[0].errorbar(n + dx, v[:, 0], yerr=err, fmt="o", color=c, mfc=mfc, capsize=2, label=lab)
            if fit:
                xs = np.linspace(n.min(), n.max(), 20)
                ls = "-" if side == "ours" else ":"
                axes[0].plot(xs, np.exp(fit["intercept"] + fit["slope"] * xs), ls, color=c, lw=0.8)
        r_ = np.array([[r["ratio"], *r["ratio_ci"]] for r in sel])
        dx = 0.08 * (i - len(series) / 2)  # spread the series sideways so their bars stay readable
        err = np.abs(r_[:, 1:].T - r_[:, 0])
        axes[1].errorbar(n + dx, r_[:, 0], yerr=err, fmt="o-", color=c, capsize=2, label=f"{design}, L={L}")
    base = sorted({r["n_qubits"] for r in rows if r["design"] == "none"})
    if base:
        xs = np.linspace(base[0], base[-1], 50)
        axes[0].plot(xs, haar_variance(xs), "k--", lw=0.8, label="2-design limit d/(3(d²-1))")
    axes[0].set(
        yscale="log", xlabel="data qubits n", ylabel=r"Var[$\partial\langle Z_0Z_1\rangle/\partial\theta_{1,1}$]"
    )
    axes[0].set_title("ours (filled, solid fit) vs paper's data (hollow, dotted fit)", fontsize=9)
    axes[0].legend(fontsize=6)
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set(yscale="log", xlabel="data qubits n", ylabel="Var ours / Var paper (95 %)")
    axes[1].legend(fontsize=7)
    if len(depths) > 1:
        ns = sorted({r["n_qubits"] for r in rows})
        for i, (design, n) in enumerate((d, n) for d in ("none", "per-qubit") for n in ns[:: max(1, len(ns) // 4)]):
            sel = sorted((r for r in rows if r["design"] == design and r["n_qubits"] == n), key=lambda r: r["n_layers"])
            if len(sel) < 2:
                continue
            c, ls = colors[i % len(colors)], "-" if design == "none" else "--"
            L = [r["n_layers"] for r in sel]
            axes[2].plot(L, [r["ours"][0] for r in sel], "o" + ls, color=c, ms=3, label=f"ours {design} n={n}")
            axes[2].plot(L, [r["paper"][0] for r in sel], "x:", color=c, ms=4)
        axes[2].set(xscale="log", yscale="log", xlabel="layers L", ylabel="Var")
        axes[2].set_title("depth sweep (o ours, x paper)", fontsize=9)
        axes[2].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paper-data", required=True, help="their data.db / detail_data.db / csv, or the reference JSON")
    p.add_argument("--write-reference", help="write the derived per-point reference JSON here (from a .db/.csv)")
    p.add_argument("--paper-figures", help="their barren/experiment.py: check the plotted lists against the data")
    p.add_argument("--ours", nargs="*", default=[], help="our study JSON files (qldm.bp/1)")
    p.add_argument("--seed", type=int, default=0, help="which master seed of our files to compare")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bp_paper_comparison.json"))
    p.add_argument("--plot", default=str(ROOT / "benchmarks" / "results" / "bp_paper_comparison.png"))
    p.add_argument("--plot-layers", default="", help="comma-separated depths for the variance-vs-n panel (all)")
    p.add_argument("--n-boot", type=int, default=1000)
    args = p.parse_args(argv)

    paper = load_paper(args.paper_data, n_boot=args.n_boot)
    if args.paper_figures:
        paper["published_figures"] = published_figures(args.paper_figures, paper["points"])
        print(json.dumps({k: v for k, v in paper["published_figures"].items() if not k.startswith("proposed")}))
    if args.write_reference:
        Path(args.write_reference).write_text(json.dumps(paper, indent=1) + "\n")
        print(f"wrote {args.write_reference} ({len(paper['points'])} points)")
    print("the paper's baseline against the 2-design limit, per depth (n <= 12 | all n): pooled Var / limit, chi2")
    haar = {"n<=12": against_haar(paper["points"], 12), "all n": against_haar(paper["points"])}
    for L, q in haar["n<=12"].items():
        a = haar["all n"][L]
        print(
            f"  L={L:>3}: {q['ratio']:.2f} [{q['ci'][0]:.2f}, {q['ci'][1]:.2f}] chi2 {q['chi2']:.1f}/{q['dof']} | "
            f"{a['ratio']:.2f} [{a['ci'][0]:.2f}, {a['ci'][1]:.2f}] chi2 {a['chi2']:.1f}/{a['dof']}"
        )
    if not args.ours:
        return 0
    rows = compare_points(load_ours(args.ours, seed=args.seed), paper["points"])
    if not rows:
        print("no (design, n, L) point in common with the paper's data", file=sys.stderr)
        return 1
    slopes = compare_slopes(rows)
    print(format_report(rows, slopes))
    report = {
        "paper_source": paper["source"],
        "paper_vs_haar": haar,
        "paper_figures": {k: v for k, v in paper.get("published_figures", {}).items() if not k.startswith("proposed")},
        "ours": [str(x) for x in args.ours],
        "seed": args.seed,
        "created": utc_now(),
        "variance": "ddof 1 on both sides; 95 % percentile bootstrap over circuits (analysis.gradvar.variance_ci)",
        "points": rows,
        "slopes": slopes,
        "summary": {
            "points": len(rows),
            "paper_in_our_ci": sum(r["paper_in_our_ci"] for r in rows),
            "abs_z_over_2": sum(abs(r["z"]) > 2 for r in rows),
        },
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    layers = [int(x) for x in args.plot_layers.split(",") if x] or None
    plot_comparison(rows, slopes, args.plot, layers)
    print(f"\nwrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
