"""``RuntimeExecutor``: a spec's expectation values from an Estimator primitive (Aer, local mode, a device).

One layer call is one job: all tokens go into one PUB as a parameter-value array (in ``circuit.parameters`` order, via
``CircuitSpec.parameter_values``), with the observables broadcast against it (shape ``(n_obs, 1)`` against ``(B,)``).
With ancilla elimination, each sampled on/off branch is one PUB of the same job, the shots split evenly over the
branches. Work past ``max_pubs_per_job`` / ``max_parameter_sets_per_pub`` is split into more PUBs/jobs.

Inference only: hardware results carry no gradient. When autograd would want one, the program returns a detached tensor
and warns once (sampling loops often run with a ``requires_grad`` weight outside ``no_grad``; raising there would break
them, while a silent zero gradient in training is what the warning is for).

With a ``cache_dir``, every PUB is paid for at most once (see :mod:`hardware.jobs`): each job's results enter the cache
(keyed by transpiled circuit, parameter values and options) as that job finishes, each job id is journaled durably in
``<cache_dir>/jobs.jsonl`` right after submission, and a rerun collects a journaled ``ibm:`` job from the service
instead of submitting it again (Aer and local-testing-mode jobs die with the process). A failed ``job.result()`` polls
the same job. Processes sharing a ``cache_dir`` take turns per job (an flock on ``<cache_dir>/.jobs.lock``, which
dies with its process): each checks the results cache and the journal under the lock before it submits, so two
processes never pay for the same PUB. Every job id is logged at INFO level; no credential is ever logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from circuits.spec import CircuitSpec
from hardware.ancilla import all_patterns, branch_parameter_values
from hardware.backends import ResolvedBackend, resolve_backend, resolve_backend_object
from hardware.jobs import HardwareJobError, JobJournal, JobRunner, ResultCache
from hardware.primitives import EstimatorFactory, EstimatorKind, Resilience, make_estimator
from hardware.transpile import Transpiled, Transpiler
from qldm.quantum.executor import Executor, Program

__all__ = ["RuntimeExecutor", "HardwareJobError"]

log = logging.getLogger(__name__)
Mode = Literal["job", "batch", "session"]


def _session_object(obj: Any) -> Any:
    """``obj`` if it is a qiskit-ibm-runtime ``Session`` or ``Batch``, else ``None`` (runtime imported only then)."""
    if isinstance(obj, str | ResolvedBackend) or obj is None:
        return None
    from qiskit_ibm_runtime import Session

    return obj if isinstance(obj, Session) else None


class RuntimeExecutor(Executor):
    """Expectation values from an Estimator primitive on a named backend (forward only).

    Args:
        backend: A backend name (see :mod:`hardware.backends`), a resolved backend, or a Qiskit object as
            qiskit-ibm-runtime's ``EstimatorV2(mode=...)`` takes it: a fake or IBM backend instance, a noiseless
            ``AerSimulator``, or an open ``Session``/``Batch`` (used as the mode; see :func:`resolve_backend_object`).
        shots: Shots per parameter set (split over branches with ancilla elimination). ``None`` with ``aer``: exact
            expectation values.
        precision: Target standard error instead of shots (runtime semantics; overrides ``shots``).
        resilience: Mitigation options passed to the runtime Estimator (a :class:`Resilience` or its dict).
        mode: ``"job"``, ``"batch"`` or ``"session"`` (runtime kinds; Aer ignores it), or an open ``Session``/
            ``Batch`` object to run in (on its backend; the caller keeps it and closes it).
        max_pubs_per_job: Split jobs beyond this many PUBs.
        max_parameter_sets_per_pub: Split a PUB's parameter array beyond this many rows.
        retries: Further attempts after a transient failure (polling the same job when it was submitted); waits
            ``backoff * 2**attempt`` seconds.
        backoff: Base wait in seconds.
        cache_dir: Directory for the transpiled-circuit cache, the results cache and the job journal (``jobs.jsonl``);
            ``None``: memory only, nothing survives the process.
        ancilla_elimination: Run the ancilla-free branch ensemble instead of the faithful circuit.
        max_branches: With ancilla elimination, enumerate all ``2**k`` patterns if at most this many, else
            sample this many uniformly (torch global RNG) per call.
        optimization_level: Preset pass-manager level.
        layout_candidates: Calibration-ranked layouts tried (see :class:`hardware.transpile.Transpiler`).
        estimator: ``"auto"``, ``"executor"`` or ``"v2"`` (see :mod:`hardware.primitives`).
        estimator_factory: Replaces primitive construction, ``(mode, options) -> estimator`` (tests, custom).
        job_retriever: ``job_id -> job`` that collects a journaled job from its service; default: the service's
            ``job`` for ``ibm:`` backends, none for the others (their jobs die with the process).

    Attributes:
        jobs_submitted: Jobs this executor submitted (paid for); collected journaled jobs are not counted.
        job_ids: Ids of the jobs submitted or collected, in order.

    Raises:
        ValueError: On bad option values.
    """

    name = "runtime"
    exact = False

    def __init__(
        self,
        backend: Any,
        *,
        shots: int | None = 1024,
        precision: float | None = None,
        resilience: Resilience | dict | None = None,
        mode: Mode | Any = "job",
        max_pubs_per_job: int = 100,
        max_parameter_sets_per_pub: int = 4096,
        retries: int = 3,
        backoff: float = 2.0,
        cache_dir: str | Path | None = None,
        ancilla_elimination: bool = False,
        max_branches: int = 64,
        optimization_level: int = 2,
        layout_candidates: int = 3,
        estimator: EstimatorKind = "auto",
        estimator_factory: EstimatorFactory | None = None,
        job_retriever: Callable[[str], Any] | None = None,
    ) -> None:
        given = _session_object(mode) or _session_object(backend)  # a caller's Session/Batch: runs in it
        if given is None and mode not in ("job", "batch", "session"):
            raise ValueError(f"mode must be 'job', 'batch', 'session' or a Session/Batch, got {mode!r}")
        if given is not None:
            backend = backend if isinstance(backend, str | ResolvedBackend) else given
            mode = "batch" if type(given).__name__ == "Batch" else "session"
        if shots is not None and shots < 1:
            raise ValueError(f"shots must be >= 1 or None, got {shots}")
        if precision is not None and not precision > 0:
            raise ValueError(f"precision must be > 0, got {precision}")
        if min(max_pubs_per_job, max_parameter_sets_per_pub, max_branches) < 1 or retries < 0:
            raise ValueError("max_pubs_per_job, max_parameter_sets_per_pub, max_branches must be >= 1, retries >= 0")
        if isinstance(backend, str):
            self.resolved = resolve_backend(backend)
        elif isinstance(backend, ResolvedBackend):
            self.resolved = backend
        else:
            self.resolved = resolve_backend_object(backend)
        if given is not None and self.resolved.kind not in ("fake", "ibm"):
            raise ValueError(f"a {type(given).__name__} runs runtime backends (fake:, ibm:), not {self.resolved.name}")
        self.shots, self.precision = shots, precision
        self.resilience = Resilience(**resilience) if isinstance(resilience, dict) else resilience or Resilience()
        self.mode, self.retries, self.backoff = mode, int(retries), float(backoff)
        self.max_pubs_per_job, self.max_parameter_sets_per_pub = (
            int(max_pubs_per_job),
            int(max_parameter_sets_per_pub),
        )
        self.ancilla_elimination, self.max_branches = bool(ancilla_elimination), int(max_branches)
        self.estimator, self.estimator_factory = estimator, estimator_factory
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.transpiler = Transpiler(
            self.resolved,
            optimization_level=optimization_level,
            layout_candidates=layout_candidates,
            cache_dir=self.cache_dir,
        )
        self._mode_obj: Any = given
        self._owns_mode = given is None  # a caller's Session/Batch is the caller's to close
        self.results = ResultCache(self.cache_dir)
        if job_retriever is None and self.resolved.kind == "ibm" and self.resolved.service is not None:
            job_retriever = self.resolved.service.job  # IBM jobs outlive the process: a rerun collects them
        self.runner = JobRunner(
            submit=lambda pubs: self._primitive().run(pubs),
            retrieve=job_retriever,
            journal=JobJournal(None if self.cache_dir is None else self.cache_dir / "jobs.jsonl"),
            backend=self.resolved.name,
            retries=self.retries,
            backoff=self.backoff,
        )

    @property
    def jobs_submitted(self) -> int:
        return self.runner.submitted

    @property
    def job_ids(self) -> list[str]:
        return self.runner.job_ids

    # ------------------------------------------------------------------ description
    def describe(self) -> dict:
        """Every constructor option but ``estimator_factory`` and ``job_retriever``, JSON-able:
        ``RuntimeExecutor(**{k: v for k, v in d.items() if k != "name"})`` rebuilds the executor."""
        return {
            "name": self.name,
            "backend": self.resolved.name,
            "shots": self.shots,
            "precision": self.precision,
            "resilience": self.resilience.to_dict(),
            "mode": self.mode,
            "max_pubs_per_job": self.max_pubs_per_job,
            "max_parameter_sets_per_pub": self.max_parameter_sets_per_pub,
            "retries": self.retries,
            "backoff": self.backoff,
            "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
            "ancilla_elimination": self.ancilla_elimination,
            "max_branches": self.max_branches,
            "optimization_level": self.transpiler.optimization_level,
            "layout_candidates": self.transpiler.layout_candidates,
            "estimator": self.estimator,
        }

    def check_spec(self, spec: CircuitSpec) -> None:
        """Refuse a circuit wider than the backend before any job: the faithful circuit needs all its wires, the
        ancilla-eliminated branches only the data qubits.

        Raises:
            ValueError: One line naming the backend's size (and ancilla elimination, where that would fit).
        """
        size, data = self.resolved.num_qubits, len(spec.data_qubits)
        wires = data if self.ancilla_elimination else spec.num_qubits
        if wires > size:
            hint = "; ancilla_elimination=True needs only the data qubits" if data <= size else ""
            raise ValueError(f"{spec.name}: {wires} wires exceed the {size} qubits of {self.resolved.name}{hint}")

    def compile(self, spec: CircuitSpec) -> _RuntimeProgram:
        self.check_spec(spec)
        return _RuntimeProgram(spec, self)

    # ------------------------------------------------------------------ submission
    def _mode(self) -> Any:
        if self.resolved.kind not in ("fake", "ibm") or self.mode == "job":
            return self.resolved.backend
        if self._mode_obj is None:
            from qiskit_ibm_runtime import Batch, Session

            self._mode_obj = (Session if self.mode == "session" else Batch)(backend=self.resolved.backend)
        return self._mode_obj

    def close(self) -> None:
        """Close an open Session/Batch (no-op in job mode)."""
        if self._mode_obj is not None and self._owns_mode:
            self._mode_obj.close()
            self._mode_obj = None

    def _primitive(self) -> Any:
        opts = {
            "shots": self.shots,
            "precision": self.precision,
            "resilience": self.resilience,
            "estimator": self.estimator,
        }
        if self.estimator_factory is not None:
            return self.estimator_factory(self._mode(), opts)
        return make_estimator(self.resolved, self._mode(), **opts)

    def submit(self, pubs: Sequence[tuple], keys: Sequence[str] | None = None) -> list[np.ndarray]:
        """Run PUBs in as few jobs as the limits allow, each job paid for at most once; returns each PUB's ``evs``.

        Args:
            pubs: The PUBs, in order.
            keys: Results-cache key of each PUB. With keys, each job's results enter the cache the moment that job
                finishes, and the job is journaled under a key derived from its PUBs' keys, so a rerun of the same
                missing PUBs collects the journaled job instead of paying for it again.

        Raises:
            HardwareJobError: A job failed after all retries (the message names its id; a rerun collects it).
            ValueError, TypeError, KeyError: Input errors from the primitive, never retried.
        """
        if keys is not None and len(keys) != len(pubs):
            raise ValueError(f"got {len(keys)} keys for {len(pubs)} PUBs")
        out: list[np.ndarray] = []
        for start in range(0, len(pubs), self.max_pubs_per_job):
            chunk = list(pubs[start : start + self.max_pubs_per_job])
            if keys is None:  # nothing to match a rerun or another process against: never shared
                result = self.runner.run(uuid.uuid4().hex, chunk)
                out.extend(np.asarray(r.data.evs, dtype=float) for r in result)
                continue
            out.extend(self._run_shared(chunk, list(keys[start : start + len(chunk)])))
        return out

    def _run_shared(self, pubs: list[tuple], keys: list[str]) -> list[np.ndarray]:
        """One job's PUBs, under the cache's job lock: what another process finished meanwhile is not paid again.

        The lock is held from the cache and journal check through submission to the results entering the cache, so
        a second process sharing the cache waits and then finds the results instead of submitting the same PUBs.
        """
        with self.results.job_lock():
            # another process may have run them since our first look
            evs = [self.results.get(key, _evs_shape(pub)) for key, pub in zip(keys, pubs)]
            missing = [i for i, ev in enumerate(evs) if ev is None]
            if missing:
                self.runner.journal.reload()  # ids journaled by other processes since this one started
                todo_keys = [keys[i] for i in missing]
                job_key = hashlib.sha256("".join(todo_keys).encode()).hexdigest()[:32]
                result = self.runner.run(job_key, [pubs[i] for i in missing])
                for i, key, r in zip(missing, todo_keys, result):
                    evs[i] = np.asarray(r.data.evs, dtype=float)
                    self.results.put(key, evs[i])  # as this job finishes: a later failure keeps it
        return evs


def _evs_shape(pub: tuple) -> tuple[int, int]:
    """The ``evs`` shape of a PUB ``(circuit, observables (n_obs, 1), values (B, P), ...)``: ``(n_obs, B)``."""
    return (len(pub[1]), len(pub[2]))


class _RuntimeProgram(Program):
    """PUBs of the faithful circuit or of the branch circuits; results detached, in the inputs' dtype."""

    cast_back = True

    def __init__(self, spec: CircuitSpec, executor: RuntimeExecutor) -> None:
        super().__init__(spec)  # no chunking here: run_numpy splits work by the job and PUB limits
        self.executor = executor
        self._warned = False
        if executor.ancilla_elimination:
            k = len(spec.ancilla_qubits)
            if k == 0:
                raise ValueError(f"{spec.name}: ancilla elimination needs ancillas; the spec has none")
            self.patterns = all_patterns(k) if 2**k <= executor.max_branches else None
        else:
            executor.transpiler.transpile(spec)  # fail early if too wide; fills the cache
        self._hash: dict[int, str] = {}

    def _circuit_hash(self, t: Transpiled) -> str:
        key = id(t)
        if key not in self._hash:
            from qiskit import qasm3

            self._hash[key] = hashlib.sha256(qasm3.dumps(t.circuit).encode()).hexdigest()[:20]
        return self._hash[key]

    def _pubs(self, inputs: np.ndarray, weights: np.ndarray) -> list[tuple[Transpiled, np.ndarray, float | None]]:
        """(transpiled, parameter values (B, P) in ISA order, precision) per PUB, before row splitting."""
        ex = self.executor
        if not ex.ancilla_elimination:
            t = ex.transpiler.transpile(self.spec)
            values = self.spec.parameter_values(inputs, weights)  # (B, P) in circuit.parameters order
            return [(t, self._to_isa_order(t, self.spec.circuit.parameters, values), ex.precision)]
        k = len(self.spec.ancilla_qubits)
        if self.patterns is not None:
            patterns = self.patterns  # stratified: every pattern, equal shots (unbiased, lowest variance)
        else:
            bits = torch.randint(0, 2, (ex.max_branches, k))  # torch global RNG (checkpoint-safe convention)
            patterns = [tuple(int(b) for b in row) for row in bits.tolist()]
        per_branch = None
        if ex.precision is not None:
            per_branch = ex.precision * math.sqrt(len(patterns))
        elif ex.shots is not None:
            per_branch = 1.0 / math.sqrt(max(1, ex.shots // len(patterns)))
        pubs = []
        for pattern in patterns:
            branch, t = ex.transpiler.transpile_branch(self.spec, pattern)
            values = branch_parameter_values(branch, inputs, weights)
            pubs.append((t, self._to_isa_order(t, branch.circuit.parameters, values), per_branch))
        return pubs

    @staticmethod
    def _to_isa_order(t: Transpiled, source_params: Any, values: np.ndarray) -> np.ndarray:
        col = {p.name: i for i, p in enumerate(source_params)}
        return values[:, [col[p.name] for p in t.circuit.parameters]]

    def _key(self, t: Transpiled, values: np.ndarray, precision: float | None) -> str:
        ex = self.executor
        h = hashlib.sha256(self._circuit_hash(t).encode())
        h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        opts = {
            "backend": ex.resolved.name,
            "shots": ex.shots,
            "precision": precision,
            "resilience": ex.resilience.to_dict(),
            "estimator": ex.estimator,
        }
        h.update(json.dumps(opts, sort_keys=True).encode())
        return h.hexdigest()[:32]

    def run_numpy(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``inputs (B, n_in)``, ``weights (n_w,)`` -> expectation values ``(B, n_obs)`` as float64."""
        ex = self.executor
        results: list[np.ndarray] = []
        todo: list[tuple[int, str, tuple]] = []
        for t, values, precision in self._pubs(inputs, weights):
            obs = [[o] for o in t.observables]  # (n_obs, 1) broadcast against (B,) -> evs (n_obs, B)
            for r0 in range(0, values.shape[0], ex.max_parameter_sets_per_pub):
                rows = values[r0 : r0 + ex.max_parameter_sets_per_pub]
                key = self._key(t, rows, precision)
                pub = (t.circuit, obs, rows) if precision is None else (t.circuit, obs, rows, precision)
                cached = self.executor.results.get(key, _evs_shape(pub))  # a damaged entry reads as missing
                results.append(cached)
                if cached is None:
                    todo.append((len(results) - 1, key, pub))
        if todo:
            evs = ex.submit(
                [pub for _, _, pub in todo], keys=[key for _, key, _ in todo]
            )  # caches each job's results as it finishes
            for (slot, _, _), ev in zip(todo, evs):
                results[slot] = ev
        per_pub = [np.asarray(r).reshape(self.spec.num_outputs, -1).T for r in results]  # (rows, n_obs) each
        stacked = np.concatenate(per_pub, axis=0)  # (n_branches * B, n_obs), branch-major
        return stacked.reshape(-1, inputs.shape[0], self.spec.num_outputs).mean(axis=0)  # (B, n_obs)

    def _run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad) and not self._warned:
            warnings.warn(
                f"RuntimeExecutor({self.executor.resolved.name}) is inference-only: its output is detached and "
                "carries no gradient; run sampling under torch.no_grad()",
                RuntimeWarning,
                stacklevel=3,  # the program's caller (_run <- Program.__call__ <- caller)
            )
            self._warned = True
        out = self.run_numpy(x.detach().cpu().double().numpy(), w.detach().cpu().double().numpy())
        return torch.as_tensor(out, dtype=x.dtype, device=x.device)  # (B, n_obs)
