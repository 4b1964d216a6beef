"""Throughput and peak memory of ``QuantumLayer`` on the Q-FFN circuit, per executor (issue 2, section 6).

Usage::

    python benchmarks/bench_quantum_layer.py                 # full run: n = 4, 8, 12, 16, 32
    python benchmarks/bench_quantum_layer.py --quick         # smoke run: n = 4, 8, few tokens
    python benchmarks/bench_quantum_layer.py --executors statevector aer-qnn --n 4
    python benchmarks/bench_quantum_layer.py --executors statevector tensornet tensornet-tree --n 4 8 16 \
        --tokens 4096 --skip statevector:8 --out benchmarks/results/quantum_layer_issue13.json
                                                             # issue 13: batches of 4,096, ratios to n = 4

Circuit: ``qffn_circuit(n, n_layers=2, ancillas="per-qubit", readout="ring")`` (2n wires). ``tensornet`` runs it as
the real transfer-matrix ring sweep; ``tensornet-tree`` is the general complex network that ran it before issue 13.
Each (executor, n) cell runs in a fresh child process, so that its memory is its own and a crash, a timeout or a
memory blow-up loses only that cell. Per cell the child

1. builds ``QuantumLayer(spec, executor=...)`` and runs a warm-up forward+backward twice on a few tokens (compilation,
   lazy initialisation); the faster one sizes the batch, ``clamp(target_s / s_per_token)``;
2. times the forward under ``torch.no_grad`` (inference) and the forward+backward (``sum().backward()``, with
   gradients to inputs and weights as inside the Q-FFN), ``--repeats`` times each, and reports the median;
3. counts (ring sweep) or estimates (general network, statevector) the real flops per token of the forward+backward
   and divides the achieved rate by a 512 x 512 GEMM rate in the program's arithmetic (float32 or complex64) measured
   in the same child: the fraction of the arithmetic roofline (``benchmarks/layer_cell.py``);
4. reports memory per phase as the kernel's resident high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``
   just before the phase) minus the resident set at that moment. The measure is the same for every executor, whether
   memory comes from torch's allocator, Aer's C++ simulator or numpy (``tracemalloc`` would miss the first two). Memory
   that an allocator cached in an earlier phase and reuses does not count again. Where the reset is not allowed,
   ``ru_maxrss`` is used (an upper bound, flagged).

A parent-side watchdog kills a child whose resident set exceeds ``--mem-limit-gib`` or that runs past ``--timeout``. An
executor that is too slow, killed or failing at some n is not tried at larger n. Executors whose module fails to import
are listed as unavailable. Torch gets ``--threads`` threads, and so does Aer (``max_parallel_threads``), so the
comparison is fair.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _machine import machine_info  # benchmarks/ is sys.path[0] when this file runs as a script

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "quantum_layer.json"
SIZES = (4, 8, 12, 16, 32)

# name -> (registry name, module to import, options, largest n tried, tokens cap)
EXECUTORS: dict[str, tuple[str, str, dict, int, int]] = {
    "statevector": ("statevector", "qldm.quantum.statevector.executor", {}, 12, 4096),
    "tensornet": ("tensornet", "qldm.quantum.tensornet.executor", {}, 32, 4096),  # Q-FFN: the ring sweep
    # the general network as it ran before issue 13 (same code, its old 1,024-token chunks): the "before" figure
    "tensornet-tree": (
        "tensornet",
        "qldm.quantum.tensornet.executor",
        {"method": "tree", "chunk_size": 1024},
        32,
        4096,
    ),
    "branch-K1": ("branch", "qldm.quantum.statevector.branch", {}, 16, 4096),  # simulates 2**n data amplitudes
    "aer-pub": ("aer", "qldm.quantum.aer", {"method": "pub"}, 8, 256),
    "aer-qnn": ("aer", "qldm.quantum.aer", {"method": "qnn"}, 4, 8),
}
_BRANCH_K_NAMES = ("k", "K", "num_branches", "branches", "n_branches", "num_samples", "samples", "shots")


# ================================================================================================ parent
def _machine_info(threads: int) -> dict:
    versions = {}
    for mod in ("torch", "numpy", "qiskit", "qiskit_aer", "qiskit_machine_learning", "opt_einsum", "quimb"):
        try:
            versions[mod] = importlib.import_module(mod).__version__
        except Exception:  # noqa: BLE001 - optional packages may be absent or broken
            versions[mod] = None
    info = machine_info(threads, short_commit=False)
    return {
        "cpu_model": info["cpu"], "logical_cores": info["cores"], "threads": threads,
        "python": platform.python_version(), "platform": platform.platform(),
        "versions": versions, "git_commit": info["commit"], "git_dirty": info["dirty"],
        "date_utc": info["date_utc"], "load_avg_at_start": info["load_avg"],
    }  # fmt: skip


def _branch_k_option() -> dict:
    """The BranchExecutor keyword that sets K (its name is that module's choice), set to 1."""
    from qldm.quantum.statevector import BranchExecutor

    params = inspect.signature(BranchExecutor.__init__).parameters
    name = next((p for p in _BRANCH_K_NAMES if p in params), None)
    if name is None:
        raise RuntimeError(f"no K option among {list(params)}")
    return {name: 1}


def _spawn(cfg: dict, timeout_s: float, mem_limit_mib: float) -> dict:
    """Run one cell in a child with a wall-clock and resident-memory watchdog."""
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]), MKL_NUM_THREADS=str(cfg["threads"]))
    if cfg.get("omp_wait_policy"):  # PASSIVE: idle OpenMP threads sleep instead of spinning (see --omp-wait-policy)
        env["OMP_WAIT_POLICY"] = cfg["omp_wait_policy"]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(cfg)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start, peak = time.monotonic(), 0.0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                rss = next((int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS:")), 0.0)
            peak = max(peak, rss)
        except OSError:
            rss = 0.0
        if rss > mem_limit_mib or time.monotonic() - start > timeout_s:
            proc.kill()
            proc.wait()
            why = f"RSS {rss:.0f} MiB > limit" if rss > mem_limit_mib else f"> {timeout_s:.0f} s"
            return {"status": "killed", "note": why}
        time.sleep(0.05)
    out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return {"status": "error", "note": tail[:160]}
    result = json.loads(lines[-1])
    result["child_wall_s"] = time.monotonic() - start
    return result


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _add_ratios(rows: list[dict]) -> float | None:
    """Each row's forward+backward tokens/s over the n = 4 statevector's in this run (``ratio_sv4``)."""
    ref = next((r.get("fwd_bwd_tokens_per_s") for r in rows if r["executor"] == "statevector" and r["n"] == 4), None)
    for r in rows:
        r["ratio_sv4"] = r["fwd_bwd_tokens_per_s"] / ref if ref and r.get("fwd_bwd_tokens_per_s") else None
    return ref


def _print_table(rows: list[dict]) -> None:
    head = f"{'executor':<15} {'n':>3} {'wires':>5} {'tokens':>6} {'fwd tok/s':>10} {'fwd+bwd tok/s':>13} "
    head += f"{'/sv n=4':>7} {'GF/s':>6} {'peak':>6} {'roof':>6} {'fwd MiB':>8} {'f+b MiB':>8}  note"
    print(head)
    print("-" * (len(head) + 20))
    for r in rows:
        note = " ".join(x for x in (r["status"] if r["status"] != "ok" else "", r.get("note", "")) if x)
        print(
            f"{r['executor']:<15} {r['n']:>3} {r['wires']:>5} {r.get('tokens', '-')!s:>6} "
            f"{_fmt(r.get('fwd_tokens_per_s')):>10} {_fmt(r.get('fwd_bwd_tokens_per_s')):>13} "
            f"{_fmt(r.get('ratio_sv4')):>7} {_fmt(r.get('achieved_gflops')):>6} "
            f"{_fmt(r.get(_peak_key(r))):>6} {_fmt(r.get('roofline_fraction')):>6} "
            f"{_fmt(r.get('fwd_peak_mib')):>8} {_fmt(r.get('fwd_bwd_peak_mib')):>8}  {note}"
        )


def _peak_key(row: dict) -> str:
    return "gemm_c64_gflops" if row.get("peak_gemm") == "complex64" else "gemm_f32_gflops"


#: Issue 13's targets for the default tensor-network executor: (n, forward+backward tokens/s, ratio to sv n = 4).
TARGETS = ((4, 40_000, None), (8, 25_000, 0.6), (16, 20_000, 0.5))


def _targets(rows: list[dict], executor: str = "tensornet") -> list[dict]:
    """Issue 13's targets against this run: absolute tokens/s (machine- and load-dependent) and the ratio."""
    out = []
    for n, tokens_s, ratio in TARGETS:
        row = next((r for r in rows if r["executor"] == executor and r["n"] == n and r["status"] == "ok"), None)
        if row is None:
            continue
        got, got_ratio = row["fwd_bwd_tokens_per_s"], row.get("ratio_sv4")
        out.append({
            "executor": executor, "n": n, "tokens_per_s": got, "target_tokens_per_s": tokens_s,
            "tokens_met": got >= tokens_s, "ratio_sv4": got_ratio, "target_ratio": ratio,
            "ratio_met": None if ratio is None or got_ratio is None else got_ratio >= ratio,
        })  # fmt: skip
    return out


def _ratios(rows: list[dict], n: int = 4) -> dict:
    """Exact torch over Aer, forward+backward tokens/s at n, from this run."""
    cell = {r["executor"]: r.get("fwd_bwd_tokens_per_s") for r in rows if r["n"] == n and r["status"] == "ok"}
    torch_exact = {k: v for k, v in cell.items() if k in ("statevector", "tensornet")}
    out: dict = {"n": n}
    if torch_exact:
        best = max(torch_exact, key=torch_exact.get)
        out["exact_torch_executor"] = best
        for aer in ("aer-qnn", "aer-pub"):
            if cell.get(aer):
                out[f"exact_torch_over_{aer.replace('-', '_')}"] = torch_exact[best] / cell[aer]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: n = 4, 8; tiny batches; 1 repeat")
    p.add_argument("--n", type=int, nargs="+", help=f"data qubits (default {SIZES}; quick: 4 8)")
    p.add_argument("--executors", nargs="+", choices=list(EXECUTORS), help="default: all")
    p.add_argument("--threads", type=int, default=2, help="torch and Aer threads (default 2)")
    p.add_argument("--target-s", type=float, help="seconds per timed run (default 3; quick 0.3)")
    p.add_argument("--repeats", type=int, help="timed repeats, median reported (default 3; quick 1)")
    p.add_argument("--timeout", type=float, help="seconds per cell before its child is killed")
    p.add_argument("--mem-limit-gib", type=float, default=8.0, help="kill a child above this resident set")
    p.add_argument("--skip", nargs="*", default=[], help="cells to leave out, as executor:n (e.g. statevector:8)")
    p.add_argument("--tokens", type=int, default=None, help="fixed batch per timed call (default: sized by target)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    p.add_argument(
        "--omp-wait-policy",
        choices=("ACTIVE", "PASSIVE"),
        help="OMP_WAIT_POLICY of the children (default: the runtime's); on a machine whose cores are busy with other "
        "jobs, libgomp's spinning threads wait for descheduled peers at every parallel op; PASSIVE avoids it",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(ROOT))
        from layer_cell import run_cell  # benchmarks/ is sys.path[0] when this file runs as a script

        print(json.dumps(run_cell(json.loads(args.child))))
        return 0

    quick = args.quick
    sizes = tuple(args.n or ((4, 8) if quick else SIZES))
    names = args.executors or list(EXECUTORS)
    target_s = args.target_s or (0.3 if quick else 3.0)
    repeats = args.repeats or (1 if quick else 3)
    timeout = args.timeout or (120.0 if quick else 600.0)
    machine = _machine_info(args.threads)
    print(f"# {machine['cpu_model']}, {machine['logical_cores']} cores, {args.threads} threads")
    print(f"# {machine['versions']}")

    rows: list[dict] = []
    for name in names:
        registry, module, options, max_n, max_tokens = EXECUTORS[name]
        options = dict(options)
        try:
            importlib.import_module(module)
            if name.startswith("branch"):
                options.update(_branch_k_option())
        except Exception as err:  # noqa: BLE001 - any import failure makes the executor unavailable
            for n in sizes:
                rows.append({"executor": name, "n": n, "wires": 2 * n, "status": "unavailable",
                             "note": f"{type(err).__name__}: {err}"[:120]})  # fmt: skip
            continue
        stop_note = ""
        for n in sizes:
            row = {"executor": name, "n": n, "wires": 2 * n, "options": options}
            if f"{name}:{n}" in args.skip:
                rows.append(row | {"status": "skipped", "note": "--skip"})
                continue
            if n > max_n or stop_note:
                rows.append(row | {"status": "skipped", "note": stop_note or f"n > {max_n} (too slow/large)"})
                continue
            min_tokens = 1 if name == "aer-qnn" or 2 * n >= 20 else (2 if quick else 4)
            cfg = {"registry": registry, "options": options, "n": n, "threads": args.threads,
                   "min_tokens": min_tokens, "max_tokens": min(max_tokens, 64 if quick else max_tokens),
                   "target_s": target_s, "repeats": repeats, "cell_budget_s": timeout / 4,
                   "tokens": args.tokens, "omp_wait_policy": args.omp_wait_policy}  # fmt: skip
            row |= _spawn(cfg, timeout, args.mem_limit_gib * 1024)
            rows.append(row)
            print(f"  {name} n={n}: {row['status']} {row.get('note', '')}", flush=True)
            if row["status"] != "ok":
                stop_note = f"not run: {row['status']} at n={n}"

    print()
    _add_ratios(rows)  # the targets are ratios: absolute figures differ between machines and with load
    _print_table(rows)
    ratios = _ratios(rows)
    print(f"\nratio at n=4 (fwd+bwd tokens/s, exact torch / Aer): {ratios}")
    targets = _targets(rows)
    for t in targets:
        ratio = "" if t["target_ratio"] is None else f", ratio {t['ratio_sv4']:.2f} vs >= {t['target_ratio']}"
        print(f"issue 13 target n={t['n']}: {t['tokens_per_s']:,.0f} tok/s vs >= {t['target_tokens_per_s']:,}{ratio}")
    settings = {"quick": quick, "sizes": sizes, "target_s": target_s, "repeats": repeats, "tokens": args.tokens,
                "timeout_s": timeout, "mem_limit_gib": args.mem_limit_gib,
                "circuit": "qffn_circuit(n, 2, 'per-qubit', 'ring')", "threads": args.threads,
                "omp_wait_policy": args.omp_wait_policy or os.environ.get("OMP_WAIT_POLICY"),
                "forward": "torch.no_grad", "fwd_bwd": "sum().backward(), grads to inputs and weights",
                "memory": "per phase: VmHWM (reset before the phase) minus VmRSS before it, MiB"}  # fmt: skip
    machine["load_avg_at_end"] = os.getloadavg()  # a busy machine makes every figure lower
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "settings": settings, "results": rows,
                                    "ratio_n4": ratios, "issue13_targets": targets}, indent=2,
                                   default=str))  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
