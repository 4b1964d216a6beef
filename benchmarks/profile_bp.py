"""Where the barren-plateau engine spends its time: torch profiler over ``BPBatch.first_gradient`` (issue 13).

Usage::

    python benchmarks/profile_bp.py                           # this checkout's engine, n = 12 and 16, one thread
    python benchmarks/profile_bp.py --root /path/to/older/checkout --out results/profile_bp_before.json

Per width: the operators with the largest self CPU time (share of the total and microseconds per call), and the CPU
seconds per state-layer (one row's state or tangent through one layer) of an unprofiled run of the same batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(ROOT), help="checkout whose analysis/engine.py is profiled")
    p.add_argument("--widths", default="12:40,16:4", help="n:rows pairs")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "profile_bp.json"))
    args = p.parse_args(argv)
    sys.path.insert(0, args.root)

    import numpy as np
    import torch
    from torch.profiler import profile

    from analysis.engine import BPBatch

    torch.set_num_threads(1)
    report = {"engine_root": str(Path(args.root).resolve()), "load_avg_start": os.getloadavg(), "widths": []}
    for item in args.widths.split(","):
        n, rows = (int(v) for v in item.split(":"))
        rng = np.random.default_rng(0)
        axes = rng.integers(0, 3, (rows, args.layers, n))
        angles = torch.as_tensor(rng.uniform(0, 2 * np.pi, (rows, args.layers * n)), dtype=torch.float32)
        batch = BPBatch(axes=axes, dtype=torch.float32)
        batch.first_gradient(angles)  # warm up
        c = time.process_time()
        batch.first_gradient(angles)
        per_state_layer = (time.process_time() - c) / (2 * rows * args.layers)
        with profile() as prof:
            batch.first_gradient(angles)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        top = [
            {
                "op": e.key,
                "share": e.self_cpu_time_total / total,
                "calls": e.count,
                "us_per_call": e.self_cpu_time_total / e.count,
            }
            for e in events[:8]
        ]
        report["widths"].append(
            {"n": n, "rows": rows, "layers": args.layers, "cpu_s_per_state_layer": per_state_layer, "top_ops": top}
        )
        print(f"n = {n}, {rows} rows, {args.layers} layers: {per_state_layer * 1e6:.1f} CPU-us per state-layer")
        for t in top:
            print(f"  {t['op']:<24} {t['share']:6.1%} {t['calls']:>6} calls {t['us_per_call']:>9.1f} us/call")
    report["load_avg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
