"""Exactly-once hardware jobs: a results cache that survives damage and a durable journal of submitted jobs.

Paid devices bill per job. Three rules keep every PUB paid for at most once:

1. A job's results enter the cache the moment that job finishes, not after the whole call, so a failure or Ctrl-C
   while waiting on job 3 of 4 keeps jobs 1 and 2.
2. A job id is written to the journal (``jobs.jsonl``, fsynced) right after submission. A rerun that finds the id
   collects that job from the service instead of submitting it again.
3. A failure of ``job.result()`` (a dropped connection, a timeout) is retried by polling the *same* job. A new job
   is submitted only when the first never reached the service (``run`` raised) or the service says the job itself
   ended in error (failed jobs run no paid quantum time).

Nothing here knows Qiskit: a job is anything with ``job_id()``, ``result()`` and optionally ``status()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ResultCache", "JobJournal", "JobRunner", "HardwareJobError", "FAILED_STATES", "atomic_write"]

log = logging.getLogger(__name__)

# Final states in which a job produced no result; resubmitting such a job pays for nothing twice.
FAILED_STATES = frozenset({"ERROR", "CANCELLED", "FAILED"})
# Programming or input errors are never retried: retrying cannot fix them.
_NOT_TRANSIENT = (ValueError, TypeError, KeyError)


class HardwareJobError(RuntimeError):
    """A job failed after all retries."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Any]:
    """A binary file handle whose contents replace ``path`` whole, or not at all.

    The temporary file has a unique name in the same folder (two processes never write one file) and is fsynced,
    then renamed over ``path``; on an error it is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ResultCache:
    """``key -> float64 array`` on disk (``<root>/results/<key>.npy``), written atomically.

    A damaged or mismatched entry reads as missing, is deleted, and gets recomputed (see :meth:`get`).

    Args:
        root: Cache folder; ``None`` keeps nothing.
    """

    root: Path | None

    def _path(self, key: str) -> Path | None:
        return None if self.root is None else Path(self.root) / "results" / f"{key}.npy"

    def get(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The entry for ``key``, or None if there is none or it cannot be trusted.

        A damaged entry (truncated by a crash or a full disk), or one of another shape than ``shape`` or not float64
        (a foreign or stale file), gets a one-line warning naming the file, is deleted and reads as missing, so it
        is recomputed.
        """
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            value = np.load(path, allow_pickle=False)
            if value.dtype != np.float64 or (shape is not None and value.shape != tuple(shape)):
                raise ValueError(f"holds {value.dtype} {value.shape}, expected float64 {shape}")
        except (ValueError, OSError, EOFError) as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            log.warning("damaged results cache entry %s (%s): recomputing it", path, reason)
            path.unlink(missing_ok=True)
            return None
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as fh:
            np.save(fh, np.asarray(value, dtype=np.float64))

    def job_lock(self) -> contextlib.AbstractContextManager:
        """Exclusive use of this cache's jobs across processes (waits for it); a no-op without a cache folder.

        An flock, so a killed holder frees it at once.
        """
        if self.root is None:
            return contextlib.nullcontext()
        from qldm.train.runlock import file_lock

        Path(self.root).mkdir(parents=True, exist_ok=True)
        return file_lock(Path(self.root) / ".jobs.lock")


@dataclass
class JobJournal:
    """Append-only record ``{"key": job key, "job_id": ..., "backend": ...}`` per submitted job.

    A torn last line (crash mid-append) is ignored on reading. The newest record for a key wins.

    Args:
        path: The ``jobs.jsonl`` file; ``None`` keeps the journal in memory (lost with the process).
    """

    path: Path | None
    _ids: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Read the records again: another process sharing the journal may have added some."""
        if self.path is None or not Path(self.path).is_file():
            return
        for line in Path(self.path).read_text().splitlines():
            try:
                rec = json.loads(line)
                self._ids[str(rec["key"])] = str(rec["job_id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn trailing record: that job's id was never confirmed written

    def lookup(self, key: str) -> str | None:
        return self._ids.get(key)

    def record(self, key: str, job_id: str, backend: str) -> None:
        self._ids[key] = job_id
        if self.path is None:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"key": key, "job_id": job_id, "backend": backend, "time": time.time()}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _status_name(job: Any) -> str:
    status = getattr(job, "status", None)
    if status is None:
        return ""
    try:
        value = status()
    except Exception:  # noqa: BLE001 - a status query that fails tells us nothing
        return ""
    return str(getattr(value, "name", value)).upper()


@dataclass
class JobRunner:
    """Submit groups of PUBs as jobs, each paid for at most once.

    Args:
        submit: ``pubs -> job`` (the primitive's ``run``).
        retrieve: ``job_id -> job`` from the service (``QiskitRuntimeService.job``), or ``None`` where jobs do not
            outlive the process (Aer, local testing mode).
        journal: Where submitted job ids are recorded.
        backend: Backend name written with each record.
        retries: Further attempts after a failure.
        backoff: Waits ``backoff * 2**attempt`` seconds between attempts.

    Attributes:
        submitted: Jobs this runner submitted (collected ones are not counted).
        collected: Jobs taken over from the journal.
    """

    submit: Callable[[list], Any]
    retrieve: Callable[[str], Any] | None
    journal: JobJournal
    backend: str
    retries: int = 3
    backoff: float = 2.0
    submitted: int = 0
    collected: int = 0
    job_ids: list[str] = field(default_factory=list)

    def run(self, key: str, pubs: Sequence) -> Any:
        """Return the result of the one job for ``key`` (``pubs``), submitting it only if no job exists.

        Raises:
            HardwareJobError: When every attempt failed, naming the job id if one was submitted.
            ValueError, TypeError, KeyError: Input errors from the primitive, never retried.
        """
        job = self._collect(key)
        for attempt in range(self.retries + 1):
            try:
                if job is None:
                    job = self.submit(list(pubs))  # raises before the service saw it: nothing paid
                    job_id = str(job.job_id()) if hasattr(job, "job_id") else f"local-{id(job)}"
                    self.submitted += 1
                    self.job_ids.append(job_id)
                    self.journal.record(key, job_id, self.backend)
                    log.info("submitted job %s on %s with %d PUB(s)", job_id, self.backend, len(pubs))
                return job.result()
            except _NOT_TRANSIENT:
                raise
            except Exception as err:  # noqa: BLE001 - transient service failures are retried
                if job is not None and _status_name(job) in FAILED_STATES:
                    job = None  # the job itself failed on the service: a new one pays nothing twice
                if attempt == self.retries:
                    jid = f" (job {job.job_id()})" if job is not None and hasattr(job, "job_id") else ""
                    raise HardwareJobError(
                        f"job on {self.backend}{jid} failed after {attempt + 1} attempt(s): {type(err).__name__}: "
                        f"{err}; rerun to collect it without paying again"
                    ) from err
                wait = self.backoff * 2**attempt
                what = "polling the same job" if job is not None else "resubmitting"
                log.warning("job on %s failed (%s); %s in %.1fs", self.backend, type(err).__name__, what, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _collect(self, key: str) -> Any:
        job_id = self.journal.lookup(key)
        if job_id is None or self.retrieve is None:
            return None
        try:
            job = self.retrieve(job_id)
        except Exception as err:  # noqa: BLE001 - an unknown id means the job never ran: submit it
            log.warning("journal job %s could not be retrieved (%s); submitting anew", job_id, err)
            return None
        if _status_name(job) in FAILED_STATES:
            return None
        self.collected += 1
        self.job_ids.append(job_id)
        log.info("collecting job %s from the journal instead of resubmitting", job_id)
        return job
