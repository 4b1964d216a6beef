"""float32 against float64 on full-depth barren-plateau points: may the paper's studies run in single precision?

Usage::

    python benchmarks/check_bp_precision.py                       # n = 12 (both designs) and 14 (baseline), L = 500

For each point, the same 100 circuits (same seeds and angles) are differentiated in both precisions; the script
prints and writes (``results/bp_precision.json``) the largest gradient difference, the RMS gradient, both variances
and both CPU times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", default="none:12,per-qubit:12,none:14", help="design:n pairs")
    p.add_argument("--layers", type=int, default=500)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bp_precision.json"))
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from analysis.gradvar import PointConfig, sample_gradients

    torch.set_num_threads(1)
    report = {"load_avg_start": os.getloadavg(), "layers": args.layers, "samples": args.samples, "points": []}
    for item in args.points.split(","):
        design, n = item.split(":")
        grads, cpu = {}, {}
        for precision in ("float64", "float32"):
            cfg = PointConfig(
                design=design, n_qubits=int(n), n_layers=args.layers, samples=args.samples, precision=precision
            )
            c = time.process_time()
            grads[precision] = sample_gradients(cfg).first[:, 0]
            cpu[precision] = time.process_time() - c
        g64, g32 = grads["float64"], grads["float32"]
        row = {
            "design": design,
            "n": int(n),
            "max_abs_diff": float(np.abs(g32 - g64).max()),
            "rms_grad": float(np.sqrt((g64**2).mean())),
            "var_float64": float(np.var(g64, ddof=1)),
            "var_float32": float(np.var(g32, ddof=1)),
            "cpu_s": cpu,
        }
        report["points"].append(row)
        print(
            f"{design:>9} n={n:>2}: max |g32 - g64| {row['max_abs_diff']:.1e} (rms g {row['rms_grad']:.1e}); "
            f"Var {row['var_float64']:.6e} / {row['var_float32']:.6e}; "
            f"CPU {cpu['float64']:.1f} / {cpu['float32']:.1f} s"
        )
    report["load_avg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
