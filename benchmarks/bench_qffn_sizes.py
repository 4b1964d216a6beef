"""Every Q-FFN size on its fastest exact path: forward+backward tokens/s of the ring executor at n = 2..32, beside the
statevector where it fits, in one run (one batch of 4,096 tokens, float32).

    python benchmarks/bench_qffn_sizes.py [--threads 1] [--out benchmarks/results/qffn_sizes.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _machine import machine_info

from qldm.qffn import QFFNConfig, make_core

SIZES = (2, 3, 4, 6, 8, 12, 16, 24, 32)


def tokens_per_s(n: int, executor: str, *, tokens: int, repeats: int, ancillas: str, readout: str) -> float | None:
    """Forward+backward tokens/s, or None where the executor cannot run the circuit."""
    cfg = QFFNConfig(n_qubits=n, executor=executor, ancillas=ancillas, readout=readout)
    try:
        core = make_core(cfg)
    except ValueError:
        return None
    x = torch.randn(tokens, n, requires_grad=True)
    core(x).sum().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        core(x).sum().backward()
    return repeats * tokens / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "qffn_sizes.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    print(f"{'n':>3} {'ancillas':>10} {'readout':>8} {'ring tok/s':>12} {'statevector tok/s':>18}")
    for ancillas, readout in (("per-qubit", "ring"), ("none", "local")):
        for n in SIZES:
            kw = {"tokens": args.tokens, "repeats": args.repeats, "ancillas": ancillas, "readout": readout}
            ring = tokens_per_s(n, "ring", **kw)
            sv = tokens_per_s(n, "statevector", **kw) if n <= 4 else None  # beyond 8 wires: minutes per batch
            rows.append({"n": n, "ancillas": ancillas, "readout": readout, "ring": ring, "statevector": sv})
            sv_text = f"{sv:,.0f}" if sv else "-"
            print(f"{n:>3} {ancillas:>10} {readout:>8} {ring:>12,.0f} {sv_text:>18}")
    seed = {r["n"]: r["ring"] for r in rows if r["ancillas"] == "per-qubit"}
    result = {"machine": machine_info(args.threads), "tokens": args.tokens, "rows": rows,
              "n4_over_n16": seed[4] / seed[16]}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"n = 4 / n = 16 tokens/s (ring, the seed's circuit): {result['n4_over_n16']:.2f}")


if __name__ == "__main__":
    main()
