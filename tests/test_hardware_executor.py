"""RuntimeExecutor (PUBs, order, shots, cache, retries, options, tokens), emulator and sampling hooks."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import qffn_data as _data

import circuits
from hardware.emulator import EmulatorExecutor
from hardware.executor import HardwareJobError, RuntimeExecutor
from hardware.primitives import Resilience, make_estimator
from hardware.sampling import attach_hardware, block_tokens, parse_steps, plan


class Counting:
    """Wraps the default primitive construction; counts runs and PUBs, optionally fails the first runs."""

    def __init__(self, resolved, fail_first=0):
        self.resolved, self.fail_first, self.runs, self.pubs, self.primitives = (
            resolved,
            fail_first,
            0,
            [],
            [],
        )

    def __call__(self, mode, opts):
        inner = make_estimator(self.resolved, mode, **opts)
        self.primitives.append(inner)
        outer = self

        class Primitive:
            def run(self, pubs):
                outer.runs += 1
                outer.pubs.append(list(pubs))
                if outer.runs <= outer.fail_first:
                    raise TimeoutError("simulated transient failure")
                return inner.run(pubs)

        return Primitive()


def _executor(backend="aer", fail_first=0, **kw):
    ex = RuntimeExecutor(backend, **kw)
    ex.estimator_factory = Counting(ex.resolved, fail_first)
    return ex, ex.estimator_factory


def test_all_tokens_in_one_pub_and_parameter_order():
    spec, x, w, exact = _data(batch=7)
    ex, counter = _executor("aer", shots=None)
    out = ex.compile(spec)(x, w)
    assert counter.runs == 1 and len(counter.pubs[0]) == 1  # one job, one PUB for 7 tokens x 2 observables
    circuit, observables, values = counter.pubs[0][0]
    assert np.asarray(values).shape == (7, spec.circuit.num_parameters) and len(observables) == 2
    np.testing.assert_allclose(out.numpy(), exact.numpy(), atol=1e-9)  # per token, in circuit.parameters order


def test_shot_based_aer_within_k_over_sqrt_shots():
    spec, x, w, exact = _data(batch=6)
    shots = 4000
    out = RuntimeExecutor("aer", shots=shots).compile(spec)(x, w)
    assert (out - exact).abs().max() < 5 / math.sqrt(shots)  # std of a +-1 outcome's mean <= 1/sqrt(shots)
    assert (out - exact).abs().max() > 0  # really sampled


def test_ancilla_elimination_exact_on_aer_and_one_job():
    spec, x, w, exact = _data(n_qubits=3, batch=4)
    ex, counter = _executor("aer", shots=None, ancilla_elimination=True)
    out = ex.compile(spec)(x, w)
    assert counter.runs == 1 and len(counter.pubs[0]) == 8  # one PUB per branch, all in one job
    assert all(p[0].num_qubits == 3 for p in counter.pubs[0])
    np.testing.assert_allclose(out.numpy(), exact.numpy(), atol=1e-9)


def test_job_splitting_beyond_limits():
    spec, x, w, exact = _data(batch=10)
    ex, counter = _executor("aer", shots=None, max_parameter_sets_per_pub=4, max_pubs_per_job=2)
    out = ex.compile(spec)(x, w)
    assert [len(p) for p in counter.pubs] == [2, 1]  # 10 rows -> 3 PUBs -> 2 jobs
    np.testing.assert_allclose(out.numpy(), exact.numpy(), atol=1e-9)


def test_results_cache_prevents_resubmission(tmp_path):
    spec, x, w, _ = _data(batch=3)
    first, c1 = _executor("aer", shots=500, cache_dir=tmp_path)
    a = first.compile(spec)(x, w)
    resumed, c2 = _executor("aer", shots=500, cache_dir=tmp_path)  # a new run, same cache
    b = resumed.compile(circuits.qffn_circuit(2, 2))(x, w)
    assert c1.runs == 1 and c2.runs == 0
    assert torch.equal(a, b)
    other, c3 = _executor("aer", shots=800, cache_dir=tmp_path)  # different options: not a hit
    other.compile(spec)(x, w)
    assert c3.runs == 1


def test_retry_after_transient_failure(caplog):
    spec, x, w, exact = _data(batch=2)
    ex, counter = _executor("aer", shots=None, fail_first=2, retries=3, backoff=0.0)
    with caplog.at_level(logging.INFO, logger="hardware"):
        out = ex.compile(spec)(x, w)
    assert counter.runs == 3
    np.testing.assert_allclose(out.numpy(), exact.numpy(), atol=1e-9)
    assert any("submitted job" in r.message for r in caplog.records)  # job ids are logged
    ex2, counter2 = _executor("aer", shots=None, fail_first=10, retries=1, backoff=0.0)
    with pytest.raises(HardwareJobError, match="after 2 attempt"):
        ex2.compile(spec)(x, w)
    assert counter2.runs == 2


@pytest.mark.parametrize("kind", ["executor", "v2"])
def test_resilience_options_reach_the_runtime_primitive(kind):
    from hardware.backends import resolve_backend

    resolved = resolve_backend("fake:FakeManilaV2")
    res = Resilience(measure_mitigation=True, zne=True, dynamical_decoupling=True, twirling=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make_estimator(resolved, resolved.backend, shots=300, precision=None, resilience=res, estimator=kind)
    o = est.options
    assert o.resilience.measure_mitigation and o.resilience.zne_mitigation
    assert o.dynamical_decoupling.enable and o.twirling.enable_gates and o.default_shots == 300
    plain = make_estimator(
        resolved, resolved.backend, shots=None, precision=0.05, resilience=Resilience(), estimator=kind
    )
    assert plain.options.resilience_level == 0 and not plain.options.resilience.measure_mitigation


def test_no_token_in_any_written_file(tmp_path, monkeypatch):
    secret = "tok-SECRET-4c3b2a1"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", secret)
    handler = logging.FileHandler(tmp_path / "run.log")
    logging.getLogger("hardware").addHandler(handler)
    logging.getLogger("hardware").setLevel(logging.DEBUG)
    try:
        spec, x, w, _ = _data(batch=2)
        ex = RuntimeExecutor("fake:FakeManilaV2", shots=50, cache_dir=tmp_path / "cache")
        ex.compile(spec)(x, w)
    finally:
        logging.getLogger("hardware").removeHandler(handler)
        handler.close()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 3  # log, transpiled QPY, cached results
    assert "submitted job" in (tmp_path / "run.log").read_text()
    for p in files:
        assert secret.encode() not in p.read_bytes(), p


def test_inference_only_output_is_detached_with_warning():
    spec, x, w, exact = _data(batch=2)
    w = w.clone().requires_grad_(True)
    program = RuntimeExecutor("aer", shots=None).compile(spec)
    with pytest.warns(RuntimeWarning, match="inference-only"):
        out = program(x, w)
    assert out.grad_fn is None
    with torch.no_grad():
        program(x, w)  # no warning needed under no_grad


def test_fake_backend_local_mode_matches_exact_within_noise_and_shots():
    # n = 2 data qubits on FakeManilaV2 (runtime local testing mode, the code path of a real device).
    # Tolerance: 4 sigma of shot noise plus 0.15 for the emulator's noise-model error measured here
    # (benchmarks/bench_hardware.py); the same values differ from exact by up to ~0.3.
    spec, x, w, exact = _data(batch=4, scale=0.6)
    shots = 400
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        device = RuntimeExecutor("fake:FakeManilaV2", shots=shots).compile(spec)(x, w)
        predicted = EmulatorExecutor("fake:FakeManilaV2", shots=None).compile(spec)(x, w)
    assert (device - predicted).abs().max() < 4 / math.sqrt(shots) + 0.15
    assert (predicted - exact).abs().max() > 0.05  # the noise is real and the emulator models it


def test_emulator_tracks_aer_noise_better_than_exact():
    spec, x, w, exact = _data(n_qubits=2, batch=6, scale=0.6)
    emu = EmulatorExecutor("aer-noise:FakeManilaV2", shots=None).compile(spec)(x, w)
    torch.manual_seed(0)
    aer = RuntimeExecutor("aer-noise:FakeManilaV2", shots=8000).compile(spec)(x, w)
    err_emu, err_exact = (emu - aer).abs().mean(), (exact - aer).abs().mean()
    assert err_emu < 0.6 * err_exact, (err_emu, err_exact)
    noisy = EmulatorExecutor("aer-noise:FakeManilaV2", shots=100).compile(spec)
    assert 0.02 < float((noisy(x, w) - emu).std()) < 0.2  # shot noise of ~1/sqrt(100)


def test_parse_steps_and_plan_token_count_matches_model():
    assert parse_steps("last:3", 10) == {7, 8, 9} and parse_steps("0,2", 5) == {0, 2}
    for bad in ("last:0", "9", "x"):
        with pytest.raises(ValueError):
            parse_steps(bad, 5)
    from qldm.models.config import ModelConfig, QFFNConfig
    from qldm.models.unet import build_unet

    cfg = ModelConfig(quantum_blocks="all", qffn=QFFNConfig(n_qubits=2))
    unet = build_unet(cfg).eval()
    seen = []
    for _, m in unet.quantum_modules():
        m.quantum.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].reshape(-1, 2).shape[0]))
    with torch.no_grad():
        unet(torch.randn(1, 4, cfg.latent_size, cfg.latent_size), 10, torch.randn(1, 3, cfg.text_dim))
    counted = sorted(seen)
    assert sorted(t for _, t in block_tokens(cfg, "all")) == counted
    p = plan(cfg, "aer", blocks="all", steps="all", total_steps=2, guidance=True, shots=100)
    assert p["parameter_sets"] == 2 * 2 * sum(counted) and p["jobs"] == 2 * len(counted)
    assert p["shots"] == 100 * p["parameter_sets"]


def test_attach_hardware_switches_executor_at_chosen_steps():
    from qldm.models.config import ModelConfig, QFFNConfig
    from qldm.models.unet import build_unet

    cfg = ModelConfig(quantum_blocks="bottleneck", qffn=QFFNConfig(n_qubits=2))
    unet = build_unet(cfg).eval()
    ((name, mod),) = unet.quantum_modules()
    exact = mod.quantum.executor
    args = (torch.randn(1, 4, cfg.latent_size, cfg.latent_size), 10, torch.randn(1, 3, cfg.text_dim))
    with torch.no_grad():
        ref = unet(*args)
    cb = attach_hardware(unet, "aer", blocks="bottleneck", steps="last:1", total_steps=3, shots=None)
    cb(0, 900)
    assert mod.quantum.executor is exact
    cb(2, 10)
    assert isinstance(mod.quantum.executor, RuntimeExecutor)
    with torch.no_grad():
        hw = unet(*args)
    torch.testing.assert_close(hw, ref, atol=1e-4, rtol=1e-4)  # exact Aer = exact torch (float32 model)
    assert cb.executor.jobs_submitted == 1
    cb(1, 500)  # back to exact elsewhere
    assert mod.quantum.executor is exact


def test_plan_refuses_counts_below_one():
    from qldm.models.config import ModelConfig, QFFNConfig

    cfg = ModelConfig(quantum_blocks="bottleneck", qffn=QFFNConfig(n_qubits=2))
    for bad in ({"shots": 0}, {"shots": -1}, {"max_pubs_per_job": 0}):
        with pytest.raises(ValueError, match="counts >= 1"):
            plan(cfg, "aer", total_steps=2, **bad)
