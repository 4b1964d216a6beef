"""Exactly-once job submission and the damage-tolerant results cache (hardware/jobs.py), with a fake service."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hardware.jobs import HardwareJobError, JobJournal, JobRunner, ResultCache


class FakeService:
    """Jobs that outlive the client, like IBM's: ``run`` bills one job; ``job(id)`` retrieves it."""

    def __init__(self, fail_result: int = 0, fail_run: int = 0, error_state: bool = False) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.billed = 0
        self.fail_result, self.fail_run, self.error_state = fail_result, fail_run, error_state
        self._ids = itertools.count()

    def run(self, pubs: list) -> FakeJob:
        if self.fail_run:
            self.fail_run -= 1
            raise ConnectionError("submission never reached the service")
        self.billed += 1
        job = FakeJob(f"job-{next(self._ids)}", pubs, self)
        self.jobs[job.job_id()] = job
        return job

    def job(self, job_id: str) -> FakeJob:
        return self.jobs[job_id]


class FakeJob:
    def __init__(self, job_id: str, pubs: list, service: FakeService) -> None:
        self._id, self.pubs, self.service = job_id, pubs, service
        self.failed = False

    def job_id(self) -> str:
        return self._id

    def status(self) -> str:
        return "ERROR" if self.failed else "DONE"

    def result(self) -> list[float]:
        if self.service.error_state and not self.failed and self.service.billed == 1:
            self.failed = True
        if self.failed:
            raise RuntimeError("job ended in error on the service")
        if self.service.fail_result:
            self.service.fail_result -= 1
            raise TimeoutError("connection dropped while waiting")
        return [float(p) for p in self.pubs]


def runner(service: FakeService, journal: JobJournal, retrieve: bool = True) -> JobRunner:
    return JobRunner(
        submit=service.run,
        retrieve=service.job if retrieve else None,
        journal=journal,
        backend="fake",
        retries=3,
        backoff=0.0,
    )


def test_result_failure_polls_the_same_job(tmp_path):
    service = FakeService(fail_result=2)
    r = runner(service, JobJournal(tmp_path / "jobs.jsonl"))
    assert r.run("k", [1, 2]) == [1.0, 2.0]
    assert service.billed == 1 and r.submitted == 1


def test_submission_failure_resubmits(tmp_path):
    service = FakeService(fail_run=2)
    r = runner(service, JobJournal(tmp_path / "jobs.jsonl"))
    assert r.run("k", [3]) == [3.0]
    assert service.billed == 1


def test_job_that_failed_on_the_service_is_resubmitted_once(tmp_path):
    service = FakeService(error_state=True)
    r = runner(service, JobJournal(tmp_path / "jobs.jsonl"))
    assert r.run("k", [4]) == [4.0]
    assert service.billed == 2  # the failed job ran no paid time; one good job


def test_rerun_collects_journaled_jobs_instead_of_paying_again(tmp_path):
    service = FakeService(fail_result=100)
    journal = tmp_path / "jobs.jsonl"
    first = runner(service, JobJournal(journal))
    with pytest.raises(HardwareJobError, match="rerun to collect"):
        first.run("k", [5])
    assert service.billed == 1
    service.fail_result = 0
    second = runner(service, JobJournal(journal))  # a new process reads the journal
    assert second.run("k", [5]) == [5.0]
    assert service.billed == 1 and second.submitted == 0 and second.collected == 1


def test_torn_journal_line_is_ignored(tmp_path):
    journal = tmp_path / "jobs.jsonl"
    JobJournal(journal).record("a", "job-a", "fake")
    with open(journal, "a") as fh:
        fh.write('{"key": "b", "job_id": "jo')  # crash mid-append
    j = JobJournal(journal)
    assert j.lookup("a") == "job-a" and j.lookup("b") is None


def test_input_errors_are_not_retried(tmp_path):
    calls = []

    def bad_run(pubs):
        calls.append(pubs)
        raise ValueError("bad PUB")

    r = JobRunner(submit=bad_run, retrieve=None, journal=JobJournal(None), backend="fake", backoff=0.0)
    with pytest.raises(ValueError, match="bad PUB"):
        r.run("k", [1])
    assert len(calls) == 1


def test_cache_round_trip_and_damaged_entry_is_recomputed(tmp_path):
    cache = ResultCache(tmp_path)
    cache.put("a", np.arange(4.0))
    np.testing.assert_array_equal(cache.get("a"), np.arange(4.0))
    path = tmp_path / "results" / "a.npy"
    path.write_bytes(path.read_bytes()[:20])  # truncated by a crash
    assert cache.get("a") is None and not path.exists()
    assert ResultCache(None).get("a") is None
