"""Throughput of ``QuantumLayer.from_qnn`` against ``TorchConnector(EstimatorQNN)`` and PennyLane, same circuits.

The circuits are qiskit-machine-learning's own (its EstimatorQNN and TorchConnector tests and its documentation),
plus two wider feature-map + ansatz pairs. Every stack computes exact expectation values in float64:

- ``torchconnector``: ``TorchConnector(EstimatorQNN(..., input_gradients=True, default_precision=0))``, the
  reference estimator and its parameter-shift gradient;
- ``fast``: ``QuantumLayer.from_qnn(qnn)`` (float64 statevector, adjoint gradients);
- ``pennylane`` (if installed, ``pip install .[pennylane]``): the same gates as a ``default.qubit`` QNode with the
  torch interface, ``diff_method="backprop"`` and parameter broadcasting over the batch.

One timed unit is forward + ``backward`` of a random upstream gradient, with gradients to inputs and weights. Before
timing, every stack's outputs and gradients are checked against the fast layer's (1e-6). Prints a table and writes
JSON with the machine.

    python benchmarks/bench_estimatorqnn.py [--batch 256] [--ref-batch 4] [--target-s 1.0] [--threads 2] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _machine import machine_info  # benchmarks/ is sys.path[0] when this file runs as a script
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import (
    RealAmplitudes,
    ZFeatureMap,
    ZZFeatureMap,
    efficient_su2,
    real_amplitudes,
    zz_feature_map,
)
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.circuit.library import qnn_circuit
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qldm.quantum.compile import compile_spec
from qldm.quantum.layer import QuantumLayer

warnings.filterwarnings("ignore", category=DeprecationWarning)


def cases() -> list[tuple[str, QuantumCircuit, list, list, object]]:
    """(name, circuit, input params, weight params, observables) of the benchmark."""
    out = []
    x, w = Parameter("input1"), Parameter("weight1")
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.ry(x, 0)
    qc.rx(w, 0)
    two = [SparsePauliOp.from_list([("Z", 1), ("X", 1)]), SparsePauliOp.from_list([("Z", 2), ("X", 2)])]
    out.append(("qml test 1q, 2 obs", qc, [x], [w], two))
    fm, an = ZFeatureMap(2, reps=1), RealAmplitudes(2, reps=1)
    obs = [SparsePauliOp("ZI"), SparsePauliOp("IZ")]
    out.append(("qml connector test ZFM+RA n=2", fm.compose(an), list(fm.parameters), list(an.parameters), obs))
    qc, fm_params, an_params = qnn_circuit(2)
    out.append(("qml docs qnn_circuit n=2", qc, list(fm_params), list(an_params), None))
    fm, an = ZZFeatureMap(4), RealAmplitudes(4)
    obs = [SparsePauliOp.from_list([("XYZI", 0.5), ("IIZX", -1.0)]), SparsePauliOp("ZZZZ")]
    out.append(("ZZFM+RA classes n=4, XYZ obs", fm.compose(an), list(fm.parameters), list(an.parameters), obs))
    fm, an = zz_feature_map(6, reps=1), efficient_su2(6, reps=2)
    out.append(("zz_fm+efficient_su2 n=6", fm.compose(an), list(fm.parameters), list(an.parameters), None))
    fm, an = zz_feature_map(8, reps=1), real_amplitudes(8, reps=3)
    out.append(("zz_fm+real_amplitudes n=8", fm.compose(an), list(fm.parameters), list(an.parameters), None))
    return out


def pennylane_model(layer: QuantumLayer) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The layer's compiled gates as a broadcasting PennyLane QNode ``(x (B, n_in), w (n_w,)) -> (B, n_obs)``."""
    try:
        import pennylane as qml
    except ImportError:
        return None
    compiled = compile_spec(layer.spec)
    n = layer.spec.num_qubits
    named = {"h": qml.Hadamard, "x": qml.PauliX, "cx": qml.CNOT, "cz": qml.CZ, "swap": qml.SWAP}
    rotations = {"rx": qml.RX, "ry": qml.RY, "rz": qml.RZ, "p": qml.PhaseShift, "rzz": qml.IsingZZ}
    paulis = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}

    def term(label: str):  # Qiskit labels are little-endian: label[-1 - q] acts on qubit q
        ops = [paulis[c](q) for q, c in enumerate(reversed(label)) if c != "I"]
        return qml.prod(*ops) if len(ops) > 1 else (ops[0] if ops else qml.Identity(0))

    hams = [
        qml.dot([float(c.real) for c in op.coeffs], [term(p) for p in op.paulis.to_labels()])
        for op in layer.spec.observables
    ]

    @qml.qnode(qml.device("default.qubit", wires=n), interface="torch", diff_method="backprop")
    def circuit(angles: torch.Tensor):  # (B, A)
        for op in compiled.ops:
            wires = list(op.qubits)
            if op.basis is None and op.name in named:
                named[op.name](wires=wires)
            elif op.basis is None:  # Qiskit's matrix puts qubits[0] least significant, PennyLane most
                qml.QubitUnitary(op.matrix, wires=wires[::-1])
            elif op.name in rotations:
                rotations[op.name](angles[:, op.slots[0]], wires=wires)
            else:
                raise ValueError(f"no PennyLane mapping for gate {op.name!r}")
        return [qml.expval(h) for h in hams]

    def model(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out = circuit(compiled.angles(x, w))  # list of (B,)
        return torch.stack(list(out), dim=-1) if isinstance(out, (list, tuple)) else out[:, None]

    return model


def timed(step: Callable[[], None], target_s: float) -> float:
    """Median seconds of one ``step`` over repeats filling about ``target_s`` (at least 3, after one warm-up)."""
    step()
    times: list[float] = []
    while len(times) < 3 or sum(times) < target_s:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fwd_bwd(model: Callable, x: torch.Tensor, w: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_()
    out = model(x, w)
    gx, gw = torch.autograd.grad((out.double() * g).sum(), [x, w])
    return out.detach().double(), gx.double(), gw.double()


def run_case(name, qc, inputs, weights, obs, *, batch: int, ref_batch: int, target_s: float, seed: int) -> dict:
    qnn = EstimatorQNN(
        circuit=qc,
        input_params=inputs,
        weight_params=weights,
        observables=obs,
        input_gradients=True,
        default_precision=0.0,
    )
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(-1, 1, qnn.num_weights)
    connector = TorchConnector(qnn, initial_weights=w0)
    layer = QuantumLayer.from_qnn(qnn, initial_weights=w0)
    n_out = qnn.output_shape[0]
    x = torch.as_tensor(rng.uniform(-1, 1, (batch, qnn.num_inputs)))
    g = torch.as_tensor(rng.normal(size=(batch, n_out)))
    wl = layer.weight
    models = {
        "fast": (lambda xx, ww: layer(xx), wl),
        "torchconnector": (lambda xx, ww: connector(xx), connector.weight),
    }
    pl = pennylane_model(layer)
    if pl is not None:
        models["pennylane"] = (pl, wl)
    ref = fwd_bwd(models["fast"][0], x[:ref_batch], wl, g[:ref_batch])
    row = {"case": name, "qubits": qc.num_qubits, "inputs": qnn.num_inputs, "weights": qnn.num_weights}
    row["outputs"] = n_out
    for label, (model, w) in models.items():
        got = fwd_bwd(model, x[:ref_batch], w, g[:ref_batch])
        err = max(float((a - b).abs().max()) for a, b in zip(got, ref))
        # TorchConnector rounds to float32: 1e-6 plus that rounding of the largest value
        tol = 1e-6 + (2**-23 * max(float(t.abs().max()) for t in ref) if label == "torchconnector" else 0.0)
        if err > tol:
            raise AssertionError(f"{name}: {label} differs from the fast layer by {err:.2e}")
        b = ref_batch if label == "torchconnector" else batch
        sec = timed(lambda m=model, w=w, b=b: fwd_bwd(m, x[:b], w, g[:b]), target_s)
        row[label] = {"batch": b, "s_per_call": sec, "samples_per_s": b / sec, "max_abs_diff": err}
    for label in models:
        if label != "fast":
            row[f"fast_over_{label}"] = row["fast"]["samples_per_s"] / row[label]["samples_per_s"]
    return row


def machine(info: dict) -> dict:
    """The JSON's ``machine`` record: ``info`` (from ``machine_info``) and the versions of the compared stacks."""
    versions = {}
    for mod in ("qiskit", "qiskit_machine_learning", "pennylane"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    return {
        **{k: info[k] for k in ("cpu", "cores", "threads", "torch")},
        **versions,
        "load_avg": info["load_avg"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256, help="samples per call for the fast layer and PennyLane")
    ap.add_argument("--ref-batch", type=int, default=4, help="samples per call for TorchConnector(EstimatorQNN)")
    ap.add_argument("--target-s", type=float, default=1.0, help="timed seconds per stack and case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, nargs="*", help="indices into the case list (default: all)")
    ap.add_argument("--out", default="benchmarks/results/estimatorqnn.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    all_cases = cases()
    chosen = [all_cases[i] for i in args.cases] if args.cases else all_cases
    rows = []
    for name, qc, inputs, weights, obs in chosen:
        row = run_case(
            name,
            qc,
            inputs,
            weights,
            obs,
            batch=args.batch,
            ref_batch=args.ref_batch,
            target_s=args.target_s,
            seed=args.seed,
        )
        rows.append(row)
        print(
            f"{name}: "
            + ", ".join(
                f"{k} {row[k]['samples_per_s']:,.0f}/s" for k in ("fast", "torchconnector", "pennylane") if k in row
            ),
            flush=True,
        )
    has_pl = any("pennylane" in r for r in rows)
    head = "| circuit | qubits | in | w | out | fast samples/s | TorchConnector samples/s | fast / TC |"
    sep = "|---|---|---|---|---|---|---|---|"
    if has_pl:
        head += " PennyLane samples/s | fast / PL |"
        sep += "---|---|"
    print("\n" + head + "\n" + sep)
    for r in rows:
        line = (
            f"| {r['case']} | {r['qubits']} | {r['inputs']} | {r['weights']} | {r['outputs']} "
            f"| {r['fast']['samples_per_s']:,.0f} | {r['torchconnector']['samples_per_s']:,.1f} "
            f"| {r['fast_over_torchconnector']:,.0f}× |"
        )
        if has_pl:
            line += f" {r['pennylane']['samples_per_s']:,.0f} | {r['fast_over_pennylane']:,.1f}× |"
        print(line)
    info = machine_info(args.threads)
    out = {
        "machine": {**machine(info), "load_avg_before": load_before},
        "commit": info["commit"],
        "settings": {"batch": args.batch, "ref_batch": args.ref_batch, "target_s": args.target_s, "dtype": "float64"},
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
