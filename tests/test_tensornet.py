"""The tensor-network executor against Qiskit's Statevector, the statevector executor and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import reference_expectations
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp

from circuits import qffn_circuit
from circuits.barren import BP_ANCILLA_MODES, BP_OBSERVABLES, bp_circuit
from circuits.qffn import ANCILLA_MODES, READOUTS
from circuits.spec import CircuitSpec
from qldm.quantum.compile import UnsupportedInstructionError
from qldm.quantum.registry import make_executor
from qldm.quantum.statevector import StatevectorExecutor
from qldm.quantum.tensornet import TensorNetworkExecutor

F64 = torch.float64


def _run(spec: CircuitSpec, x: np.ndarray, w: np.ndarray, **opts) -> np.ndarray:
    prog = TensorNetworkExecutor(dtype=F64, **opts).compile(spec)
    return prog(torch.as_tensor(x, dtype=F64), torch.as_tensor(w, dtype=F64)).detach().numpy()


def random_spec(seed: int, num_wires: int = 5, depth: int = 14, generic_start: bool = True) -> CircuitSpec:
    """A seeded random circuit: random gates and wiring, inputs inside ``atan``/linear expressions, Pauli sums.

    Without ``generic_start`` wires may begin with diagonal gates (controls, ``cz``, ``crz``) acting on ``|0>``.
    """
    rng = np.random.default_rng(seed)
    x, w = ParameterVector("x", 3), ParameterVector("w", depth * 4 + num_wires)
    qc = QuantumCircuit(num_wires)
    used_x, used_w = set(), set()

    def angle():
        if rng.random() < 0.35:
            i = int(rng.integers(3))
            used_x.add(i)
            return x[i].arctan() if rng.random() < 0.5 else 0.7 * x[i] + 0.3
        j = len(used_w)
        used_w.add(j)
        return w[j]

    one = ["rx", "ry", "rz", "h"]
    two = ["crx", "cry", "crz", "cp", "cu", "cx", "cz", "swap"]
    for q in range(num_wires if generic_start else 1):  # a generic start, so that X/Y terms are not zero
        qc.ry(angle(), q)
    for _ in range(depth):
        if rng.random() < 0.4:
            name, q = one[rng.integers(len(one))], int(rng.integers(num_wires))
            getattr(qc, name)(*(() if name == "h" else (angle(),)), q)
        else:
            name = two[rng.integers(len(two))]
            a, b = (int(v) for v in rng.choice(num_wires, 2, replace=False))
            if name == "cu":
                qc.cu(angle(), angle(), angle(), angle(), a, b)
            elif name in ("cx", "cz", "swap"):
                getattr(qc, name)(a, b)
            else:
                getattr(qc, name)(angle(), a, b)
    for i in range(3):  # every input and weight must appear in the circuit
        if i not in used_x:
            qc.ry(x[i].arctan(), int(rng.integers(num_wires)))
    weights = [w[j] for j in sorted(used_w)]
    observed = list(range(num_wires - 1))  # the last wire is traced out
    obs = []
    for _ in range(3):
        terms = []
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(1, 4))
            qubits = [int(q) for q in rng.choice(observed, k, replace=False)]
            terms.append(("".join(rng.choice(list("XYZ"), k)), qubits, float(rng.normal())))
        obs.append(SparsePauliOp.from_sparse_list(terms, num_qubits=num_wires))
    return CircuitSpec(qc, tuple(x), tuple(weights), tuple(obs), tuple(observed), (), name=f"random-{seed}")


# ------------------------------------------------------------------------------------ vs qiskit Statevector
@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("ancillas", ANCILLA_MODES)
@pytest.mark.parametrize("readout", READOUTS)
def test_qffn_matches_qiskit_statevector(n, ancillas, readout):
    spec = qffn_circuit(n, 2, ancillas, readout)
    rng = np.random.default_rng(n)
    x, w = rng.normal(size=(3, n)) * 2, rng.uniform(0, 2 * np.pi, spec.num_weights)
    np.testing.assert_allclose(_run(spec, x, w), reference_expectations(spec, x, w), atol=1e-6, rtol=0)


@pytest.mark.parametrize("ancillas", BP_ANCILLA_MODES)
@pytest.mark.parametrize("observable", BP_OBSERVABLES)
def test_bp_circuits_match_qiskit_statevector(ancillas, observable):
    spec = bp_circuit(3, 4, ancillas=ancillas, observable=observable, seed=5)
    w = np.random.default_rng(1).uniform(0, 2 * np.pi, spec.num_weights)
    x = np.zeros((2, 0))
    np.testing.assert_allclose(_run(spec, x, w), reference_expectations(spec, x, w), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", range(10))
def test_random_circuits_match_qiskit_statevector(seed):
    spec = random_spec(seed, depth=14 + seed, generic_start=seed < 6)
    rng = np.random.default_rng(100 + seed)
    x, w = rng.normal(size=(3, spec.num_inputs)), rng.uniform(-np.pi, np.pi, spec.num_weights)
    expected = reference_expectations(spec, x, w)
    assert np.abs(expected).max() > 1e-3  # the comparison is not between zeros
    np.testing.assert_allclose(_run(spec, x, w), expected, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------- vs the statevector executor
@pytest.mark.parametrize("ancillas,readout", [("per-qubit", "ring"), ("shared", "local"), ("none", "ring")])
def test_n6_matches_statevector_executor(ancillas, readout):
    spec = qffn_circuit(6, 2, ancillas, readout)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 6, generator=gen, dtype=F64)
    w = torch.rand(spec.num_weights, generator=gen, dtype=F64) * 2 * np.pi
    ref = StatevectorExecutor(dtype=F64).compile(spec)(x, w)
    got = TensorNetworkExecutor(dtype=F64).compile(spec)(x, w)
    torch.testing.assert_close(got, ref, atol=1e-9, rtol=0)


@pytest.mark.slow
def test_n10_matches_statevector_executor():
    gen = torch.Generator().manual_seed(1)
    spec10 = qffn_circuit(10, 2, "per-qubit", "ring")  # 20 wires: the statevector executor's reach
    x = torch.randn(2, 10, generator=gen, dtype=F64)
    w = torch.rand(spec10.num_weights, generator=gen, dtype=F64) * 2 * np.pi
    ref = StatevectorExecutor(dtype=F64).compile(spec10)(x, w)
    torch.testing.assert_close(TensorNetworkExecutor(dtype=F64).compile(spec10)(x, w), ref, atol=1e-9, rtol=0)


def test_n16_runs_bounded_and_linear_in_n():
    gen = torch.Generator().manual_seed(1)
    spec16 = qffn_circuit(16, 2, "per-qubit", "ring")  # 32 wires, out of any statevector's reach
    prog = TensorNetworkExecutor(dtype=F64).compile(spec16)  # the general network's plan
    x16 = torch.randn(64, 16, generator=gen, dtype=F64)
    out = prog(x16, torch.rand(spec16.num_weights, generator=gen, dtype=F64) * 2 * np.pi)
    assert out.shape == (64, 16) and torch.isfinite(out).all()
    assert out.abs().max() <= 1 + 1e-9 and out.std(0).max() > 1e-6  # outputs vary with the inputs
    # each <Z_i> is a real contraction of the whole ring, linear in n: doubling n at most ~doubles the cost
    prog8 = TensorNetworkExecutor(dtype=F64).compile(qffn_circuit(8, 2, "per-qubit", "ring"))
    assert prog.plan.flops < 2.5 * prog8.plan.flops and prog.plan.largest <= 256
    # only the encoding (ket and bra) carries the token index; weight-only gates are evaluated once per chunk
    assert sum(leaf.labels[:1] == (prog.network.batch,) for leaf in prog.network.leaves) == 2 * 16 + 1


def test_shared_and_none_agree_with_qiskit_at_n8_single_token():
    spec = qffn_circuit(8, 1, "shared", "ring")
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(1, 8)), rng.uniform(0, 2 * np.pi, spec.num_weights)
    np.testing.assert_allclose(_run(spec, x, w), reference_expectations(spec, x, w), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------ gradients
def _central_fd(fn, t: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(t)
    flat = grad.view(-1)
    for i in range(t.numel()):
        d = torch.zeros_like(t).view(-1)
        d[i] = eps
        d = d.view_as(t)
        flat[i] = (fn(t + d) - fn(t - d)) / (2 * eps)
    return grad


@pytest.mark.parametrize("spec", [qffn_circuit(3, 2, "per-qubit", "ring"), random_spec(11)], ids=["qffn", "random"])
def test_gradients_match_finite_differences(spec):
    prog = TensorNetworkExecutor(dtype=F64, chunk_size=2).compile(spec)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, spec.num_inputs, generator=gen, dtype=F64, requires_grad=True)
    w = (torch.rand(spec.num_weights, generator=gen, dtype=F64) * 2 * np.pi).requires_grad_()
    probe = torch.randn(3, spec.num_outputs, generator=gen, dtype=F64)  # a random cotangent

    def loss(xx, ww):
        return (prog(xx, ww) * probe).sum()

    gx, gw = torch.autograd.grad(loss(x, w), (x, w))
    with torch.no_grad():
        fx, fw = _central_fd(lambda t: loss(t, w), x), _central_fd(lambda t: loss(x, t), w)
    for got, ref in ((gx, fx), (gw, fw)):
        assert ref.abs().max() > 1e-3
        torch.testing.assert_close(got, ref, atol=1e-7 * ref.abs().max().item() + 1e-9, rtol=1e-5)


# ---------------------------------------------------------------------------- chunking, dtype, device, errors
def test_chunking_gives_identical_results():
    spec = qffn_circuit(4, 2, "per-qubit", "ring")
    gen = torch.Generator().manual_seed(4)
    x, w = (
        torch.randn(37, 4, generator=gen, dtype=F64),
        torch.rand(spec.num_weights, generator=gen, dtype=F64),
    )
    whole = TensorNetworkExecutor(dtype=F64, chunk_size=1000).compile(spec)(x, w)
    chunked = TensorNetworkExecutor(dtype=F64, chunk_size=5).compile(spec)(x, w)
    torch.testing.assert_close(chunked, whole, atol=1e-14, rtol=0)
    assert TensorNetworkExecutor(dtype=F64).compile(spec)(x[:0], w).shape == (0, 4)


def test_float32_default_and_registry():
    spec = qffn_circuit(3, 2, "per-qubit", "ring")
    ex = make_executor("tensornet", chunk_size=8)
    assert isinstance(ex, TensorNetworkExecutor) and ex.describe()["dtype"] == "torch.float32"
    x, w = torch.randn(10, 3), torch.rand(spec.num_weights) * 6
    out = ex.compile(spec)(x, w)
    ref = TensorNetworkExecutor(dtype=F64).compile(spec)(x.double(), w.double())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    spec = qffn_circuit(6, 2, "per-qubit", "ring")
    x, w = torch.randn(64, 6, dtype=F64), torch.rand(spec.num_weights, dtype=F64) * 6
    cpu = TensorNetworkExecutor(dtype=F64).compile(spec)(x, w)
    gpu = TensorNetworkExecutor(dtype=F64, device="cuda").compile(spec)(x, w)
    torch.testing.assert_close(gpu, cpu, atol=1e-10, rtol=0)
    xs, ws = x.cuda().requires_grad_(), w.cuda().requires_grad_()
    TensorNetworkExecutor(dtype=F64).compile(spec)(xs, ws).sum().backward()
    assert xs.grad is not None and ws.grad is not None and xs.grad.device.type == "cuda"


def test_bad_input_and_options_raise_clear_errors(monkeypatch):
    monkeypatch.setenv("QLDM_DEBUG", "1")  # NaN/inf checks run only in debug mode
    spec = qffn_circuit(3, 1, "per-qubit", "ring")
    prog = TensorNetworkExecutor().compile(spec)
    w = torch.zeros(spec.num_weights)
    with pytest.raises(ValueError, match="shape"):
        prog(torch.zeros(2, 4), w)
    with pytest.raises(ValueError, match="NaN"):
        prog(torch.full((2, 3), float("nan")), w)
    with pytest.raises(ValueError, match="dtype"):
        TensorNetworkExecutor(dtype=torch.float16)
    with pytest.raises(ValueError, match="chunk_size"):
        TensorNetworkExecutor(chunk_size=0)
    with pytest.raises(ValueError, match="optimiser"):
        TensorNetworkExecutor(optimize="magic")
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.reset(1)
    bad = CircuitSpec(qc, (), (), (SparsePauliOp("ZI"),), (0, 1))
    with pytest.raises(UnsupportedInstructionError, match="reset"):
        TensorNetworkExecutor().compile(bad)


def test_edge_cases_constant_circuit_idle_wire_and_identity_terms():
    """No parameters at all, an observed wire without gates, identity terms, a wire used only as control."""
    w = ParameterVector("w", 1)
    qc = QuantumCircuit(4)
    qc.cz(2, 1)  # wire 2 starts with a diagonal gate on |0>: a hyperedge with an explicit |0> end
    qc.h(0)
    qc.cry(w[0], 0, 1)
    obs = (
        SparsePauliOp.from_list([("IIII", 0.5), ("IIZX", 1.0), ("ZIII", -0.25)]),  # wire 3 has no gate
        SparsePauliOp.from_list([("IZZI", 1.0), ("IIYY", 2.0)]),
    )
    spec = CircuitSpec(qc, (), (w[0],), obs, (0, 1, 2, 3), ())
    x, wv = np.zeros((2, 0)), np.array([0.9])
    np.testing.assert_allclose(_run(spec, x, wv), reference_expectations(spec, x, wv), atol=1e-9, rtol=0)

    const = QuantumCircuit(2)
    const.h(0)
    const.cx(0, 1)
    bell = CircuitSpec(const, (), (), (SparsePauliOp("XX"), SparsePauliOp("ZI")), (0, 1), ())
    out = _run(bell, np.zeros((3, 0)), np.zeros(0))
    np.testing.assert_allclose(out, np.tile([1.0, 0.0], (3, 1)), atol=1e-12)
