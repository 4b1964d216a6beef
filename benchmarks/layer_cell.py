"""One (executor, n) cell of ``bench_quantum_layer.py``, measured inside its own child process.

Per cell: build ``QuantumLayer(qffn_circuit(n, 2, "per-qubit", "ring"), executor=...)``, warm up, time the forward
(``torch.no_grad``) and the forward+backward (``sum().backward()``, gradients to inputs and weights), and put the
forward+backward beside the machine's arithmetic peak measured in the same child:

- flops per token: the program's own count where it has one (the ring sweep's ``flops_per_token``: every product it
  runs, forward and backward, 2 flops per real multiply-add), else an estimate from its plan (general tensor network:
  3x the planned forward contraction, 4 real flops per complex one; statevector: ``8 d`` real flops per amplitude and
  matrix step, 3 passes for the adjoint);
- peak: the best of 3 GEMMs of 512 x 512 in the program's arithmetic (float32 for real programs, complex64 for
  complex ones, 2 and 8 real flops per multiply-add) on the same threads;
- ``roofline_fraction`` = achieved flops/s of the forward+backward / that peak.
"""

from __future__ import annotations

import gc
import resource
import statistics
import time


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark (VmHWM) of this process; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_delta(timed, tokens: int, repeats: int) -> tuple[float, float, str]:
    """Median seconds of ``timed(tokens)`` and the peak resident growth (MiB) while it ran."""
    gc.collect()
    before = _status_mib("VmRSS:")
    if _reset_peak():
        seconds = statistics.median(timed(tokens) for _ in range(repeats))
        return seconds, max(_status_mib("VmHWM:") - before, 0.0), "VmHWM"
    seconds = statistics.median(timed(tokens) for _ in range(repeats))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; includes earlier peaks
    return seconds, max(peak - before, 0.0), "ru_maxrss (upper bound)"


def gemm_gflops(complex_: bool) -> float:
    """Best-of-3 512 x 512 GEMM rate in real GFLOP/s: float32 (2 per multiply-add) or complex64 (8)."""
    import torch

    a = torch.randn(512, 512, dtype=torch.complex64 if complex_ else torch.float32)
    per_mac = 8 if complex_ else 2
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        a @ a
        best = max(best, per_mac * 512**3 / (time.perf_counter() - t) / 1e9)
    return best


def flops_per_token(program) -> tuple[float | None, bool, str]:
    """Real flops of one token's forward+backward, whether the arithmetic is complex, and where the count comes from."""
    exact = getattr(program, "flops_per_token", None)
    if exact is not None:
        return float(exact), False, "counted: every product of the ring sweep, forward and backward"
    plan = getattr(program, "plan", None)
    if plan is not None and hasattr(plan, "flops"):
        return 3 * 4 * float(plan.flops), True, "estimate: 3x the planned complex contraction"
    engine = getattr(program, "engine", None)
    steps = getattr(getattr(engine, "plan", None), "steps", None)
    if steps is None:
        return None, True, "none"
    total = 0.0
    for step in steps:
        if hasattr(step, "targets"):  # a matrix step on the control-is-1 slice: d complex MACs per amplitude
            total += 8 * 2 ** len(step.targets) * 2 ** (engine.n - len(step.controls))
    return 3 * total, True, "estimate: forward + adjoint passes of the statevector"


def run_cell(cfg: dict) -> dict:
    """Measure one (executor, n) cell (see the module docstring)."""
    import torch

    from circuits import qffn_circuit
    from qldm.quantum import QuantumLayer, make_executor

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    opts = dict(cfg["options"])
    if cfg["registry"] == "aer":  # give Aer the same thread budget as torch
        opts["backend_options"] = {"max_parallel_threads": cfg["threads"]}
    spec = qffn_circuit(cfg["n"], n_layers=2, ancillas="per-qubit", readout="ring")
    layer = QuantumLayer(spec, executor=make_executor(cfg["registry"], **opts))

    def fwd(tokens: int) -> float:
        x = torch.randn(tokens, spec.num_inputs)
        t = time.perf_counter()
        with torch.no_grad():
            layer(x)
        return time.perf_counter() - t

    def fwd_bwd(tokens: int) -> float:
        x = torch.randn(tokens, spec.num_inputs, requires_grad=True)
        layer.zero_grad(set_to_none=True)
        t = time.perf_counter()
        layer(x).sum().backward()
        return time.perf_counter() - t

    if cfg.get("tokens"):  # a fixed batch (issue 13 sizes the targets at 4,096 tokens)
        fwd_bwd(cfg["tokens"])
        return _measure(cfg, layer, fwd, fwd_bwd, cfg["tokens"])
    warm_tokens = cfg["min_tokens"]
    t_warm = fwd_bwd(warm_tokens)
    t_warm = min(t_warm, fwd_bwd(warm_tokens))  # the first call also pays one-off costs
    per_token = t_warm / warm_tokens
    if per_token * cfg["min_tokens"] > cfg["cell_budget_s"]:
        return {"status": "too slow", "note": f"{per_token:.3g} s/token fwd+bwd in warm-up"}
    tokens = int(max(cfg["min_tokens"], min(cfg["max_tokens"], cfg["target_s"] / max(per_token, 1e-9))))
    # A 1-token warm-up is dominated by fixed per-call overhead, which underestimates batched throughput: grow the
    # batch while a call stays well under the target, so every executor is timed at a batch it is built for.
    while tokens < cfg["max_tokens"] and fwd_bwd(tokens) < cfg["target_s"] / 4:
        tokens = min(cfg["max_tokens"], tokens * 2)
    return _measure(cfg, layer, fwd, fwd_bwd, tokens)


def _measure(cfg: dict, layer, fwd, fwd_bwd, tokens: int) -> dict:
    """Time both phases at ``tokens`` and collect the row."""
    t_fwd, mem_fwd, how = _peak_delta(fwd, tokens, cfg["repeats"])
    t_fb, mem_fb, _ = _peak_delta(fwd_bwd, tokens, cfg["repeats"])
    program = getattr(layer, "program", None)
    flops, is_complex, source = flops_per_token(program)
    peaks = {"gemm_f32_gflops": gemm_gflops(False), "gemm_c64_gflops": gemm_gflops(True)}
    peak = peaks["gemm_c64_gflops" if is_complex else "gemm_f32_gflops"]
    achieved = None if flops is None else tokens / t_fb * flops / 1e9
    return {
        "program": type(program).__name__ if program is not None else None,
        "flops_per_token": flops,
        "flops_source": source,
        "achieved_gflops": achieved,
        "peak_gemm": "complex64" if is_complex else "float32",
        **peaks,
        "roofline_fraction": None if achieved is None else achieved / peak,
        "status": "ok",
        "tokens": tokens,
        "fwd_tokens_per_s": tokens / t_fwd,
        "fwd_bwd_tokens_per_s": tokens / t_fb,
        "fwd_s": t_fwd,
        "fwd_bwd_s": t_fb,
        "fwd_peak_mib": mem_fwd,
        "fwd_bwd_peak_mib": mem_fb,
        "memory_measure": how,
        "executor_describe": layer.executor.describe(),
        "note": "",
    }
