"""Where the time of one ``QuantumLayer`` forward+backward goes, by torch.profiler (issue 13, section 2).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/profile_quantum_layer.py            # n = 8, 16; sweep and tree; 1 thread
    python benchmarks/profile_quantum_layer.py --n 16 --methods sweep --tokens 1024

Circuit: ``qffn_circuit(n, 2, "per-qubit", "ring")``; executor ``tensornet`` with ``method`` ``sweep`` (the real
transfer-matrix ring) or ``tree`` (the general complex network, the path before issue 13, with its old 1,024-token
chunks). After two warm-up calls, ``--calls`` forward+backward calls run under the profiler; per call the script
reports wall time, the number of ATen operations that compute (views such as ``slice``/``select``/``as_strided``/
``view``/``reshape``/``transpose``/``permute``/``expand`` excluded) and the top operations by self CPU time. Writes
``benchmarks/results/quantum_layer_profile.json`` (``--out``).
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
_VIEWS = {"slice", "select", "as_strided", "view", "reshape", "transpose", "permute", "expand", "alias", "unsqueeze",
          "_unsafe_view", "t", "unbind", "split", "squeeze", "movedim", "detach", "empty", "empty_like", "lift_fresh",
          "narrow", "flatten", "contiguous", "_reshape_alias", "resolve_conj", "resolve_neg", "diagonal"}  # fmt: skip


def profile_cell(n: int, method: str, tokens: int, calls: int, top: int) -> dict:
    """Profile ``calls`` forward+backward calls of one layer; per-call figures."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from circuits import qffn_circuit
    from qldm.quantum import QuantumLayer, make_executor

    # "sweep" is the ring executor, "tree" the general tensor network (which no longer switches to the ring itself)
    executor = make_executor("ring") if method == "sweep" else make_executor("tensornet", chunk_size=1024)
    spec = qffn_circuit(n, 2, "per-qubit", "ring")
    layer = QuantumLayer(spec, executor=executor)

    def step() -> None:
        x = torch.randn(tokens, n, requires_grad=True)
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()

    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(calls):
            step()
        wall = (time.perf_counter() - start) / calls
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    compute = [e for e in events if e.key.removeprefix("aten::") not in _VIEWS]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    rows = sorted(compute, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "n": n, "method": method, "tokens": tokens, "calls": calls, "program": type(layer.program).__name__,
        "wall_ms_per_call_under_profiler": wall * 1e3,
        "compute_ops_per_call": sum(e.count for e in compute) / calls,
        "view_ops_per_call": sum(e.count for e in events) / calls - sum(e.count for e in compute) / calls,
        "top": [{"op": e.key, "calls_per_call": e.count / calls,
                 "self_ms_per_call": e.self_cpu_time_total / 1e3 / calls, "share": e.self_cpu_time_total / total}
                for e in rows],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[8, 16])
    p.add_argument("--methods", nargs="+", default=["sweep", "tree"], choices=["sweep", "tree"])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--top", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quantum_layer_profile.json")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    cells = []
    for n in args.n:
        for method in args.methods:
            cell = profile_cell(n, method, args.tokens, args.calls, args.top)
            cells.append(cell)
            head = f"\nn={n} {method} ({cell['program']}): {cell['wall_ms_per_call_under_profiler']:.1f} ms per call"
            print(f"{head}, {cell['compute_ops_per_call']:.0f} compute ops + {cell['view_ops_per_call']:.0f} views")
            for r in cell["top"]:
                ms = f"{r['self_ms_per_call']:>8.2f} ms"
                print(f"  {r['op']:<22} {r['calls_per_call']:>7.0f} calls {ms} {r['share']:>6.1%}")
    machine = {"torch": torch.__version__, "threads": args.threads, "load_avg_at_start": load_start,
               "load_avg_at_end": os.getloadavg(),
               "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    args.out.write_text(json.dumps({"machine": machine, "cells": cells}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
