"""Hardware at sampling time: chosen Q-FFN blocks at chosen denoising steps on a backend; the cost plan.

:func:`attach_hardware` returns an ``on_step_begin(step_index, timestep)`` callback for ``QLDMPipeline``: at the chosen
steps it swaps the chosen blocks' executor to one :class:`~hardware.executor.RuntimeExecutor` (or the calibrated
:class:`~hardware.emulator.EmulatorExecutor`), elsewhere back to each block's own exact executor.

:func:`plan` counts, before anything is submitted, what one image costs: tokens per block are the latent ``h *
w`` at that block's resolution, times 2 with classifier-free guidance, times the chosen steps.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from hardware.backends import resolve_backend

__all__ = ["attach_hardware", "hardware_step_callback", "parse_steps", "plan", "block_tokens"]

# Timing model of the QPU estimate (labelled a model everywhere it is printed): a fixed overhead per job and,
# per shot, the scheduled circuit duration plus the repetition delay. 250 us is IBM's default rep_delay.
JOB_OVERHEAD_S = 2.0
REP_DELAY_S = 250e-6


def parse_steps(steps: str, total_steps: int) -> set[int]:
    """``"last:K"``, ``"all"`` or ``"i,j,..."`` -> set of step indices in ``[0, total_steps)``.

    Raises:
        ValueError: On a malformed selector or an index out of range.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    s = steps.strip()
    if s == "all":
        return set(range(total_steps))
    if s.startswith("last:"):
        try:
            k = int(s[5:])
        except ValueError:
            raise ValueError(f"bad step selector {steps!r}; use last:K, all or i,j,...") from None
        if k < 1:
            raise ValueError(f"last:K needs K >= 1, got {steps!r}")
        return set(range(max(0, total_steps - k), total_steps))
    try:
        chosen = {int(p) for p in s.split(",") if p.strip()}
    except ValueError:
        raise ValueError(f"bad step selector {steps!r}; use last:K, all or i,j,...") from None
    bad = sorted(i for i in chosen if not 0 <= i < total_steps)
    if bad or not chosen:
        raise ValueError(f"step indices {bad or steps!r} outside 0..{total_steps - 1}")
    return chosen


def _unet(pipeline_or_unet: Any) -> Any:
    # a QLDMUNet itself has a ``.unet`` (the diffusers model), so test for quantum_modules() first
    unet = pipeline_or_unet if hasattr(pipeline_or_unet, "quantum_modules") else getattr(pipeline_or_unet, "unet", None)
    if not hasattr(unet, "quantum_modules"):
        raise ValueError("attach_hardware needs a QLDMPipeline or QLDMUNet (with quantum_modules())")
    return unet


def _confirm(backend_name: str, confirm: bool) -> None:
    if not backend_name.startswith("ibm:") or confirm:
        return
    if not sys.stdin.isatty():
        raise ValueError(f"{backend_name} is a real device: pass --yes to submit jobs (runs cost QPU time)")
    answer = input(f"Submit jobs to the real device {backend_name}? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise ValueError("not confirmed; nothing submitted")


def attach_hardware(
    pipeline_or_unet: Any,
    backend_name: str,
    *,
    blocks: str = "bottleneck",
    steps: str = "last:5",
    total_steps: int,
    emulate: bool = False,
    confirm: bool = False,
    executor: Any = None,
    **executor_options: Any,
) -> Callable[[int, int], None]:
    """Make an ``on_step_begin(step_index, timestep)`` callback that puts chosen blocks on hardware.

    Args:
        pipeline_or_unet: A ``QLDMPipeline`` or ``QLDMUNet``.
        backend_name: See :mod:`hardware.backends`.
        blocks: ``"bottleneck"`` or ``"all"`` (as ``QLDMUNet.set_quantum_executor``).
        steps: ``"last:K"``, ``"all"`` or ``"i,j,..."`` denoising step indices.
        total_steps: Number of denoising steps of the run.
        emulate: Use the calibrated :class:`~hardware.emulator.EmulatorExecutor` instead of submitting.
        confirm: For ``ibm:`` backends: True skips the interactive confirmation (``--yes``).
        executor: An executor to use as it is (e.g. a study's emulator); None builds one from the options.
        **executor_options: Passed to the executor (shots, resilience, cache_dir, ancilla_elimination, ...).

    Returns:
        The callback. Its ``executor`` attribute is the hardware executor, ``hardware_steps`` the chosen steps.

    Raises:
        ValueError: On a bad selector, a model without Q-FFN circuits, or an unconfirmed real device.
    """
    unet = _unet(pipeline_or_unet)
    chosen_steps = parse_steps(steps, total_steps)
    mods = dict(unet.quantum_modules())
    names = list(mods) if blocks == "all" else [n for n in mods if n.startswith("unet.mid_block.")]
    if blocks not in ("all", "bottleneck"):
        raise ValueError(f"blocks must be 'bottleneck' or 'all', got {blocks!r}")
    exact = {n: mods[n].quantum.executor for n in names if hasattr(mods[n].quantum, "executor")}
    if not exact:
        raise ValueError(f"no Q-FFN circuit in the chosen blocks ({blocks!r}); nothing to run on hardware")
    _confirm(backend_name, confirm)
    if executor is not None:
        hw = executor
    elif emulate:
        from hardware.emulator import EmulatorExecutor

        hw = EmulatorExecutor(backend_name, **executor_options)
    else:
        from hardware.executor import RuntimeExecutor

        hw = RuntimeExecutor(backend_name, **executor_options)
    state = {"on": False}

    def on_step_begin(step_index: int, timestep: int) -> None:
        want = step_index in chosen_steps
        if want == state["on"]:
            return
        for name, executor in exact.items():
            mods[name].quantum.set_executor(hw if want else executor)
        state["on"] = want

    on_step_begin.executor = hw  # type: ignore[attr-defined]
    on_step_begin.hardware_steps = sorted(chosen_steps)  # type: ignore[attr-defined]
    return on_step_begin


def hardware_step_callback(
    unet: Any,
    *,
    backend: str,
    blocks: str,
    steps: str,
    num_inference_steps: int,
    confirm: bool = False,
    **executor_options: Any,
) -> Callable[[int, int], None]:
    """The form ``qldm sample --quantum-backend`` calls; see :func:`attach_hardware`."""
    return attach_hardware(
        unet,
        backend,
        blocks=blocks,
        steps=steps,
        total_steps=num_inference_steps,
        confirm=confirm,
        **executor_options,
    )


def _level(block: str, levels: int) -> int:
    """The U-Net level of a transformer block name: ``down_blocks.i`` is level i, ``up_blocks.k`` level
    ``levels - 1 - k``, the mid block the lowest resolution."""
    head, index = block.split(".")[:2]
    if head == "down_blocks":
        return int(index)
    return levels - 1 - int(index) if head == "up_blocks" else levels - 1


def block_tokens(model_cfg: Any, blocks: str = "bottleneck") -> list[tuple[str, int]]:
    """``(slot, tokens per image per call)`` of every circuit slot the model has in ``blocks``.

    Args:
        model_cfg: A ``ModelConfig``.
        blocks: ``"all"`` (every circuit slot: the Q-FFN blocks and the quanvolution) or ``"bottleneck"`` (the mid
            block's Q-FFN).

    A transformer block at level ``i`` sees ``(latent / 2**i)**2`` tokens (diffusers downsamples after every level but
    the last); the quanvolution one token per ``k x k`` latent patch.
    """
    latent, levels = model_cfg.latent_size, len(model_cfg.unet_block_channels)
    names = [n for n in model_cfg.quantum_block_names() if blocks == "all" or n.startswith("mid_block.")]
    out = [(n, (latent // 2 ** _level(n, levels)) ** 2) for n in names]
    if blocks == "all" and model_cfg.quanv_patch:
        out.append(("conv_in.quanv", (latent // model_cfg.quanv_patch) ** 2))
    return out


def plan(
    model_cfg: Any,
    backend_name: str,
    *,
    blocks: str = "bottleneck",
    steps: str = "last:5",
    total_steps: int,
    guidance: bool = True,
    shots: int = 1024,
    ancilla_elimination: bool = False,
    max_branches: int = 64,
    max_parameter_sets_per_pub: int = 4096,
    max_pubs_per_job: int = 100,
    optimization_level: int = 2,
) -> dict:
    """Cost of sampling one image with hardware Q-FFNs: PUBs, jobs, shots, 2q depth and a modelled QPU time.

    Returns:
        A JSON-able dict; ``qpu_time_model_s`` is an estimate from a timing *model* (per-job overhead ``JOB_OVERHEAD_S``
        + shots x (scheduled circuit duration + ``REP_DELAY_S``)), not a measurement.

    Raises:
        ValueError: On bad selectors, counts below 1, or a circuit wider than the device.
    """
    from circuits import qffn_circuit
    from hardware.emulator import _duration
    from hardware.transpile import Transpiler

    counts = {"shots": shots, "max_branches": max_branches, "max_parameter_sets_per_pub": max_parameter_sets_per_pub}
    counts["max_pubs_per_job"] = max_pubs_per_job
    bad = {k: v for k, v in counts.items() if v < 1}
    if bad:
        raise ValueError(f"plan needs counts >= 1, got {bad}")
    if blocks not in ("bottleneck", "all"):
        raise ValueError(f"blocks must be 'bottleneck' or 'all', got {blocks!r}")
    chosen = parse_steps(steps, total_steps)
    spec = qffn_circuit(
        model_cfg.qffn.n_qubits,
        model_cfg.qffn.n_layers,
        ancillas=model_cfg.qffn.ancillas,
        readout=model_cfg.qffn.readout,
    )
    resolved = resolve_backend(backend_name)
    tr = Transpiler(resolved, optimization_level=optimization_level)
    k = len(spec.ancilla_qubits)
    if ancilla_elimination:
        n_branches = min(2**k, max_branches)
        t = tr.transpile_branch(spec, (1,) * k)[1]  # the all-on branch: the deepest one
    else:
        n_branches, t = 1, tr.transpile(spec)
    target = resolved.backend.target if resolved.has_calibration else None
    duration = 0.0
    if target is not None:
        clock: dict[int, float] = {}
        for inst in t.circuit.data:
            qs = [t.circuit.find_bit(q).index for q in inst.qubits]
            start = max((clock.get(q, 0.0) for q in qs), default=0.0)
            for q in qs:
                clock[q] = start + _duration(target, inst.operation.name, tuple(qs))
        meas = max((_duration(target, "measure", (q,)) for q in range(resolved.num_qubits)), default=0.0)
        duration = max(clock.values(), default=0.0) + meas
    per_block = block_tokens(model_cfg, blocks)
    cfg_factor = 2 if guidance else 1
    pubs = jobs = shots_total = param_sets = 0
    for _, tokens in per_block:
        rows = tokens * cfg_factor
        pubs_call = math.ceil(rows / max_parameter_sets_per_pub) * n_branches
        pubs += pubs_call * len(chosen)
        jobs += math.ceil(pubs_call / max_pubs_per_job) * len(chosen)
        param_sets += rows * len(chosen)
        shots_total += rows * shots * len(chosen)
    return {
        "backend": backend_name,
        "circuit": spec.name,
        "blocks": blocks,
        "hardware_steps": len(chosen),
        "total_steps": total_steps,
        "guidance_x2": guidance,
        "ancilla_elimination": ancilla_elimination,
        "branches_per_call": n_branches,
        "qffn_blocks": len(per_block),
        "tokens_per_call": [tok * cfg_factor for _, tok in per_block],
        "pubs": pubs,
        "jobs": jobs,
        "parameter_sets": param_sets,
        "shots": shots_total,
        "device_qubits": t.report.logical_qubits,
        "two_qubit_depth": t.report.two_qubit_depth,
        "two_qubit_gates": t.report.two_qubit_gates,
        "estimated_fidelity": t.report.estimated_fidelity,
        "circuit_duration_s": duration,
        "qpu_time_model_s": jobs * JOB_OVERHEAD_S + shots_total * (duration + REP_DELAY_S),
        "qpu_time_note": "a model: jobs*2 s + shots*(circuit duration + 250 us rep delay), not measured",
    }
