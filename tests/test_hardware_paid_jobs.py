"""RuntimeExecutor against a fake paid service: jobs polled not resubmitted, interrupted calls, the result cache."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import qffn_data as _data

from hardware.executor import HardwareJobError, RuntimeExecutor
from hardware.primitives import make_estimator


class PaidService:
    """A fake paid service around the Aer primitive: ``run`` bills one job, jobs outlive an executor (``job(id)``).

    ``fail`` maps a job's submission number (1-based) to what its ``result()`` does first: ``("timeout", k)``
    raises ``TimeoutError`` k times, ``("interrupt", 1)`` raises ``KeyboardInterrupt`` once (Ctrl-C while waiting).
    """

    def __init__(self, resolved, fail=None):
        self.resolved, self.fail = resolved, dict(fail or {})
        self.billed, self.jobs = 0, {}

    def factory(self, mode, opts):
        inner = make_estimator(self.resolved, mode, **opts)
        service = self

        class Primitive:
            def run(self, pubs):
                service.billed += 1
                job = PaidJob(f"job-{service.billed}", inner.run(pubs), service.fail.pop(service.billed, None))
                service.jobs[job.job_id()] = job
                return job

        return Primitive()

    def job(self, job_id):
        return self.jobs[job_id]


class PaidJob:
    def __init__(self, job_id, inner, failure):
        self._id, self.inner = job_id, inner
        self.kind, self.left = failure or (None, 0)

    def job_id(self):
        return self._id

    def status(self):
        return "RUNNING" if self.left else "DONE"

    def result(self):
        if self.left:
            self.left -= 1
            if self.kind == "interrupt":
                raise KeyboardInterrupt
            raise TimeoutError("connection dropped while waiting")
        return self.inner.result()


def _paid(service, cache, **kw):
    ex = RuntimeExecutor(
        "aer",
        shots=None,
        cache_dir=cache,
        max_parameter_sets_per_pub=2,
        max_pubs_per_job=1,
        retries=kw.pop("retries", 2),
        backoff=0.0,
        estimator_factory=service.factory,
        job_retriever=kw.pop("job_retriever", service.job),
        **kw,
    )
    return ex


def test_result_failure_polls_the_same_job_instead_of_paying_again(tmp_path):
    spec, x, w, exact = _data(batch=2)
    service = PaidService(resolve_backend_aer(), fail={1: ("timeout", 2)})
    ex = _paid(service, tmp_path)
    out = ex.compile(spec)(x, w)
    assert service.billed == 1 and ex.jobs_submitted == 1
    np.testing.assert_allclose(out.numpy(), exact.numpy(), atol=1e-9)


@pytest.mark.parametrize("failure", [("timeout", 10), ("interrupt", 1)])
def test_interrupted_multi_job_call_pays_each_pub_once(tmp_path, failure):
    # 8 tokens, 2 rows per PUB, 1 PUB per job: 4 jobs; job 3 fails (retries spent) or is interrupted while waiting
    spec, x, w, exact = _data(batch=8)
    service = PaidService(resolve_backend_aer(), fail={3: failure})
    first = _paid(service, tmp_path)
    with pytest.raises(HardwareJobError if failure[0] == "timeout" else KeyboardInterrupt):
        first.compile(spec)(x, w)
    assert service.billed == 3  # job 4 never submitted; jobs 1-2 cached, job 3 journaled
    assert len(list((tmp_path / "results").glob("*.npy"))) == 2
    service.jobs["job-3"].left = 0  # the service finished job 3 meanwhile
    rerun = _paid(service, tmp_path)  # a new process: same cache folder and journal
    out = rerun.compile(spec)(x, w)
    assert service.billed == 4  # 4 paid jobs for 4 PUBs: job 3 collected, only job 4 submitted
    assert rerun.jobs_submitted == 1 and rerun.runner.collected == 1
    np.testing.assert_allclose(out.numpy(), exact.numpy(), atol=1e-9)
    again = _paid(service, tmp_path)
    again.compile(spec)(x, w)
    assert service.billed == 4  # everything cached


def test_truncated_cache_entry_is_recomputed_not_fatal(tmp_path):
    spec, x, w, exact = _data(batch=2)
    service = PaidService(resolve_backend_aer())
    _paid(service, tmp_path).compile(spec)(x, w)
    (entry,) = (tmp_path / "results").glob("*.npy")
    entry.write_bytes(entry.read_bytes()[:30])  # torn by a crash or a full disk
    rerun = _paid(service, tmp_path, retries=0)
    np.testing.assert_allclose(rerun.compile(spec)(x, w).numpy(), exact.numpy(), atol=1e-9)
    assert service.billed == 1 and rerun.runner.collected == 1  # recomputed from the journaled job: nothing paid
    assert np.load(entry).shape == (2, 2)  # rewritten whole
    entry.write_bytes(b"")  # damaged again, and this time the job cannot be collected (as with Aer)
    local = _paid(service, tmp_path, retries=0, job_retriever=None)
    np.testing.assert_allclose(local.compile(spec)(x, w).numpy(), exact.numpy(), atol=1e-9)
    assert service.billed == 2 and local.jobs_submitted == 1


def resolve_backend_aer():
    from hardware.backends import resolve_backend

    return resolve_backend("aer")


def test_only_ibm_jobs_are_collected_from_their_service():
    from qiskit_aer import AerSimulator

    from hardware.backends import ResolvedBackend

    class Service:
        def job(self, job_id):
            raise KeyError(job_id)

    service = Service()
    device = ResolvedBackend(name="ibm:test_device", kind="ibm", backend=AerSimulator(), service=service)
    assert RuntimeExecutor(device, shots=100).runner.retrieve == service.job
    for name in ("aer", "fake:FakeManilaV2"):
        assert RuntimeExecutor(name, shots=100).runner.retrieve is None  # local jobs die with the process


def test_sample_caches_hardware_results_by_default_and_a_rerun_pays_nothing(tmp_path):
    from PIL import Image

    from qldm.cli import main
    from qldm.config import make_preset, save_config
    from qldm.models import build_pipeline

    cfg = make_preset("micro")
    build_pipeline(cfg.model).save_pretrained(tmp_path / "pipe")
    save_config(cfg, tmp_path / "pipe" / "run_config.json")
    out = tmp_path / "out"
    argv = ["sample", "--checkpoint", str(tmp_path / "pipe"), "--prompt", "anime face", "--n", "2", "--steps", "2"]
    argv += ["--quantum-backend", "aer", "--shots", "16", "--hardware-steps", "all", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    journal = out / "hardware-cache" / "jobs.jsonl"
    first = journal.read_text().splitlines()
    assert len(first) == 4  # 2 images x 2 hardware steps, one job each, every id journaled
    images = [np.asarray(Image.open(out / "images" / f"p00-00{j}.png")) for j in range(2)]
    assert main(argv) == 0  # the same command again: every result comes from the cache
    assert journal.read_text().splitlines() == first
    for j in range(2):  # and the images are the same (shot noise included)
        assert np.array_equal(np.asarray(Image.open(out / "images" / f"p00-00{j}.png")), images[j])
    off = tmp_path / "off"
    assert main([*argv[:-1], str(off), "--no-hardware-cache"]) == 0
    assert not (off / "hardware-cache").exists() and len(list((off / "images").iterdir())) == 2
