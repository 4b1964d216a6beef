"""Checks behind ``qldm hardware``: the transpilation table of a Q-FFN and the emulator against Aer's noisy run.

Plain functions (the command line lives in :mod:`qldm.commands.hardware`); nothing here is built at import time.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["emulator_check", "transpile_rows"]


def transpile_rows(
    backend: str,
    *,
    n_qubits: int,
    n_layers: int,
    optimization_level: int = 2,
    ancilla_elimination: bool = False,
    cache_dir: str | None = None,
) -> tuple[Any, list[tuple[str, Any]]]:
    """Transpile the Q-FFN circuit for a backend: the faithful form and, optionally, two ancilla-eliminated branches.

    Args:
        backend: A backend name (:func:`hardware.backends.parse_backend_name`).
        n_qubits: Data qubits.
        n_layers: Circuit layers.
        optimization_level: Preset pass manager level.
        ancilla_elimination: Also transpile the all-on and all-off branch circuits.
        cache_dir: QPY cache of transpiled circuits.

    Returns:
        ``(spec, rows)``: the circuit spec and ``(form, TranspileReport)`` rows.

    Raises:
        BackendError: On a bad backend name.
    """
    from circuits import qffn_circuit
    from hardware.backends import resolve_backend
    from hardware.transpile import Transpiler

    spec = qffn_circuit(n_qubits, n_layers)
    tr = Transpiler(resolve_backend(backend), optimization_level=optimization_level, cache_dir=cache_dir)
    rows = [("faithful", tr.transpile(spec).report)]
    if ancilla_elimination:
        k = len(spec.ancilla_qubits)
        rows.append(("branch all-on", tr.transpile_branch(spec, (1,) * k)[1].report))
        rows.append(("branch all-off", tr.transpile_branch(spec, (0,) * k)[1].report))
    return spec, rows


def emulator_check(
    backend: str,
    *,
    n_qubits: int = 2,
    tokens: int = 8,
    shots: int = 4000,
    ancilla_elimination: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """The calibrated emulator and exact values against Aer's shot-sampled noisy simulation of the same device.

    Args:
        backend: ``"aer-noise:<FakeName>"`` or ``"fake:<FakeName>"``; both compare against Aer with that fake
            device's noise model (``aer-noise:<FakeName>``).
        n_qubits: Data qubits of the 2-layer Q-FFN.
        tokens: Random tokens ``x ~ N(0, 1)``; weights are uniform in ``[0, 2 pi)``.
        shots: Aer shots per parameter set.
        ancilla_elimination: Run both paths on the ancilla-eliminated branches.
        seed: Seed of the tokens and weights.

    Returns:
        ``circuit``, ``backend`` (the Aer name), ``tokens``, ``shots``, ``exact_err`` and ``emulator_err`` (mean
        absolute difference to Aer), ``shot_floor`` (``shots ** -0.5``), ``emulator_s`` and ``aer_s`` (wall times).

    Raises:
        BackendError: If ``backend`` is not a calibrated fake device.
    """
    import torch

    from circuits import qffn_circuit
    from hardware.backends import parse_backend_name
    from hardware.emulator import EmulatorExecutor
    from hardware.executor import RuntimeExecutor
    from qldm.quantum.statevector import StatevectorExecutor

    _, fake = parse_backend_name(backend, kinds=("aer-noise", "fake"))
    name = f"aer-noise:{fake}"
    spec = qffn_circuit(n_qubits, 2)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, spec.num_inputs, generator=g, dtype=torch.float64)
    w = torch.rand(spec.num_weights, generator=g, dtype=torch.float64) * 2 * torch.pi
    exact = StatevectorExecutor(dtype=torch.float64).compile(spec)(x, w)
    emu = EmulatorExecutor(name, shots=None, ancilla_elimination=ancilla_elimination).compile(spec)
    aer = RuntimeExecutor(name, shots=shots, ancilla_elimination=ancilla_elimination).compile(spec)
    t0 = time.perf_counter()
    e = emu(x, w)
    t1 = time.perf_counter()
    a = aer(x, w)
    t2 = time.perf_counter()
    return {
        "circuit": spec.name,
        "backend": name,
        "tokens": tokens,
        "shots": shots,
        "exact_err": float((exact - a).abs().mean()),
        "emulator_err": float((e - a).abs().mean()),
        "shot_floor": shots**-0.5,
        "emulator_s": t1 - t0,
        "aer_s": t2 - t1,
    }
