"""One test suite for every executor: a tester mixin (as diffusers' model tester mixins and qiskit-machine-learning's
CPU/GPU mixins) run for the statevector, tensor-network, branch (enumerated), Aer and emulator (noise off) executors.

Each executor class only says how to build its executor (float64) and which specs it runs; the mixin checks: Qiskit
match (``conftest.reference_expectations``), ``gradcheck``, finite differences of the Qiskit reference, chunk
invariance, bad inputs, CUDA = CPU, and that ``describe()`` is JSON-able and rebuilds the executor.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import random_spec, reference_expectations

from circuits import qffn_circuit
from circuits.spec import CircuitSpec
from qldm.quantum import (
    BranchExecutor,
    Executor,
    RingExecutor,
    StatevectorExecutor,
    TensorNetworkExecutor,
    make_executor,
)
from qldm.quantum.aer import AerExecutor

F64 = torch.float64


def _args(spec: CircuitSpec, batch: int, seed: int = 0, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, spec.num_inputs, generator=g, dtype=F64) * 1.5
    w = torch.rand(spec.num_weights, generator=g, dtype=F64) * 2 * np.pi
    return x.to(device), w.to(device)


class ExecutorTesterMixin:
    """Checks shared by all executors. Subclasses set ``specs`` and implement :meth:`make`."""

    #: Spec builders this executor runs (the first is used for the slower checks).
    specs: tuple = (lambda: qffn_circuit(2, ancillas="per-qubit"),)
    #: Keyword of the executor's chunk option, or None when it has none.
    chunk_option: str | None = "chunk_size"
    match_atol: float = 1e-9
    registry: bool = True  # rebuilt by make_executor(**describe())

    def make(self, **options) -> Executor:
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------------- values
    @pytest.mark.parametrize("which", [0, 1])
    def test_matches_qiskit(self, which):
        if which >= len(self.specs):
            pytest.skip("one spec for this executor")
        spec = self.specs[which]()
        x, w = _args(spec, 3, seed=which)
        out = self.make().compile(spec)(x, w)
        assert out.shape == (3, spec.num_outputs) and out.dtype == F64
        want = reference_expectations(spec, x.numpy(), w.numpy())
        np.testing.assert_allclose(out.detach().numpy(), want, atol=self.match_atol, rtol=0)

    def test_chunk_invariance(self):
        spec = self.specs[0]()
        x, w = _args(spec, 5, seed=2)
        x.requires_grad_(True)
        w = w.requires_grad_(True)
        whole = self.make().compile(spec)
        rows = torch.cat([whole(x[i : i + 1], w) for i in range(5)])  # each token alone
        out = whole(x, w)
        torch.testing.assert_close(out, rows, atol=1e-12, rtol=0)
        if self.chunk_option is None:
            return
        chunked = self.make(**{self.chunk_option: 2}).compile(spec)(x, w)
        torch.testing.assert_close(chunked, out, atol=1e-12, rtol=0)
        g_whole = torch.autograd.grad(out.sum(), (x, w))
        g_chunk = torch.autograd.grad(chunked.sum(), (x, w))
        for a, b in zip(g_whole, g_chunk):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)

    # -------------------------------------------------------------------------------------------- gradients
    def test_gradcheck(self):
        spec = self.specs[0]()
        program = self.make().compile(spec)
        x, w = _args(spec, 2, seed=3)
        x.requires_grad_(True)
        w.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda a, b: program(a, b), (x, w), atol=1e-6)

    def test_gradients_match_finite_differences_of_qiskit(self):
        spec = self.specs[0]()
        x, w = _args(spec, 1, seed=4)
        xt, wt = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        self.make().compile(spec)(xt, wt).sum().backward()

        def f(xv: np.ndarray, wv: np.ndarray) -> float:
            return float(reference_expectations(spec, xv[None], wv).sum())

        x0, w0, eps = x.numpy()[0], w.numpy(), 1e-6
        gx = np.array([(f(x0 + eps * e, w0) - f(x0 - eps * e, w0)) / (2 * eps) for e in np.eye(len(x0))])
        gw = np.array([(f(x0, w0 + eps * e) - f(x0, w0 - eps * e)) / (2 * eps) for e in np.eye(len(w0))])
        for got, want in ((xt.grad.numpy()[0], gx), (wt.grad.numpy(), gw)):
            assert np.linalg.norm(want) > 1e-3  # the check is not vacuous
            assert np.linalg.norm(got - want) <= 1e-6 * max(1.0, np.linalg.norm(want)), (got, want)

    # ------------------------------------------------------------------------------------------- bad inputs
    def test_bad_inputs_raise_one_line_errors(self, monkeypatch):
        monkeypatch.setenv("QLDM_DEBUG", "1")  # the finiteness checks run only in debug mode
        spec = self.specs[0]()
        program = self.make().compile(spec)
        x, w = _args(spec, 2)
        n = spec.num_inputs
        bad = [
            ((torch.zeros(2, n + 1, dtype=F64), w), f"last dimension {n}"),
            ((x[0], w), "expected inputs of shape"),
            ((x, w[:-1]), f"expected {spec.num_weights} weights"),
            ((x.clone().index_fill_(1, torch.tensor([0]), float("nan")), w), "NaN/inf"),
            ((x, w.clone().index_fill_(0, torch.tensor([0]), float("inf"))), "NaN/inf"),
        ]
        for args, match in bad:
            with pytest.raises(ValueError, match=match) as err:
                program(*args)
            assert "\n" not in str(err.value)
        empty = program(x[:0], w)
        assert empty.shape == (0, spec.num_outputs)
        monkeypatch.delenv("QLDM_DEBUG")
        out = program(x.clone().index_fill_(1, torch.tensor([0]), float("nan")), w)  # no check, no host sync
        assert out.shape == (2, spec.num_outputs)

    # ------------------------------------------------------------------------------------------ description
    def test_describe_is_json_and_rebuilds(self):
        ex = self.make()
        d = ex.describe()
        assert json.loads(json.dumps(d)) == d and d["name"] == ex.name
        assert set(d) - {"name"} == {f.name for f in dataclasses.fields(type(ex).Options)}  # generated from it
        if self.registry:
            again = make_executor(**d)
            assert type(again) is type(ex) and again.describe() == d
        else:
            opts = {k: v for k, v in d.items() if k != "name"}
            assert type(ex)(**opts).describe() == d

    # ----------------------------------------------------------------------------------------------- device
    @pytest.mark.gpu
    def test_cuda_matches_cpu(self):
        spec = self.specs[0]()
        program = self.make().compile(spec)
        outs, grads = [], []
        for device in ("cpu", "cuda"):
            x, w = _args(spec, 4, seed=5, device=device)
            x.requires_grad_(True)
            w.requires_grad_(True)
            out = program(x, w)
            assert out.device.type == device
            outs.append(out.detach().cpu())
            grads.append([g.cpu() for g in torch.autograd.grad(out.sum(), (x, w))])
        torch.testing.assert_close(outs[1], outs[0], atol=1e-10, rtol=0)
        for a, b in zip(*grads):
            torch.testing.assert_close(b, a, atol=1e-9, rtol=0)


class TestStatevector(ExecutorTesterMixin):
    specs = (lambda: qffn_circuit(2, ancillas="per-qubit"), lambda: random_spec(21, num_qubits=3, num_gates=14))

    def make(self, **options) -> Executor:
        return StatevectorExecutor(dtype=F64, **options)


class TestTensorNetwork(ExecutorTesterMixin):
    specs = (lambda: qffn_circuit(2, ancillas="per-qubit"), lambda: random_spec(22, num_qubits=3, num_gates=14))

    def make(self, **options) -> Executor:
        return TensorNetworkExecutor(dtype=F64, **options)


class TestRing(ExecutorTesterMixin):
    specs = (lambda: qffn_circuit(2, ancillas="per-qubit"), lambda: qffn_circuit(3, ancillas="shared"))

    def make(self, **options) -> Executor:
        return RingExecutor(dtype=F64, **options)


class TestBranchEnumerated(ExecutorTesterMixin):
    specs = (lambda: qffn_circuit(2, ancillas="per-qubit"), lambda: qffn_circuit(3, ancillas="shared"))

    def make(self, **options) -> Executor:
        return BranchExecutor(dtype=F64, exact_if_at_most=64, **options)


class TestAer(ExecutorTesterMixin):
    specs = (lambda: qffn_circuit(2, ancillas="per-qubit"),)

    def make(self, **options) -> Executor:
        return AerExecutor(device="CPU", **options)


class TestEmulatorNoiseOff(ExecutorTesterMixin):
    """The emulator on an ideal device (no gate, readout or relaxation errors) and without shots: exact values."""

    chunk_option = None
    registry = False

    def make(self, **options) -> Executor:
        from qiskit.providers.fake_provider import GenericBackendV2

        from hardware.backends import ResolvedBackend
        from hardware.emulator import EmulatorExecutor

        ideal = ResolvedBackend("ideal", "aer-noise", GenericBackendV2(4, noise_info=False, seed=0))
        return EmulatorExecutor(ideal, shots=None, **options)

    def test_describe_is_json_and_rebuilds(self):
        from hardware.emulator import EmulatorExecutor

        ex = EmulatorExecutor("aer-noise:FakeManilaV2", shots=100, dtype="float32")  # a backend that has a name
        d = ex.describe()
        assert json.loads(json.dumps(d)) == d and d["name"] == "emulator"
        assert EmulatorExecutor(**{k: v for k, v in d.items() if k != "name"}).describe() == d


def test_runtime_describe_rebuilds():
    from hardware.executor import RuntimeExecutor
    from hardware.primitives import Resilience

    ex = RuntimeExecutor("aer", shots=300, resilience=Resilience(twirling=True), max_branches=8, retries=1)
    d = ex.describe()
    assert json.loads(json.dumps(d)) == d and d["name"] == "runtime"
    assert RuntimeExecutor(**{k: v for k, v in d.items() if k != "name"}).describe() == d


def test_registry_names_and_lazy_classes():
    from qldm.quantum.registry import EXECUTORS, executor_class

    assert sorted(EXECUTORS) == ["aer", "branch", "ring", "statevector", "tensornet"]
    assert executor_class("branch") is BranchExecutor and executor_class("aer") is AerExecutor
    assert make_executor("statevector", dtype="float64").dtype == F64
    assert make_executor("statevector", dtype="torch.float64").dtype == F64
    with pytest.raises(ValueError, match="unknown quantum executor 'nope'"):
        executor_class("nope")
    with pytest.raises(ValueError, match="unknown dtype"):
        make_executor("statevector", dtype="float65")
