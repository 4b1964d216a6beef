"""ISA transpilation with calibration-aware qubit choice, a cost report, and a QPY cache.

The spec's circuit is transpiled by ``generate_preset_pass_manager`` for the backend's target; its observables
are mapped to the device qubits with ``SparsePauliOp.apply_layout``. Device qubits are chosen from calibration
data: candidate chains of coupled qubits are grown by beam search scored by two-qubit, single-qubit and readout errors,
the best few are passed as ``initial_layout`` (and the pass manager's own noise-aware layout is tried as well), and the
candidate whose transpiled circuit has the highest estimated fidelity wins.

Aer pitfall (docs/quantum-facts.md): Aer runs parameterized ``crx``/``cry``/``crz``/``cp`` bound at run time as angle 0.
For the noiseless ``aer`` backend we therefore transpile to a plain ``{cx, rz, ry, rx, sx, x, h}`` basis, so no
controlled rotation ever reaches Aer; :func:`check_aer_safe` asserts it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qiskit import QuantumCircuit, qpy
from qiskit.circuit import ParameterExpression
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from circuits.spec import CircuitSpec
from hardware.ancilla import Branch, branch_circuits
from hardware.backends import ResolvedBackend
from hardware.jobs import atomic_write

__all__ = ["Transpiled", "TranspileReport", "Transpiler", "check_aer_safe", "check_isa", "estimate_fidelity"]

log = logging.getLogger(__name__)

AER_BASIS = ["cx", "rz", "ry", "rx", "sx", "x", "h"]
_BROKEN_IN_AER = {"crx", "cry", "crz", "cp"}


@dataclass(frozen=True)
class TranspileReport:
    """Cost of one transpiled circuit.

    Attributes:
        logical_qubits: Wires of the source circuit.
        depth: Transpiled depth.
        two_qubit_gates: Count of two-qubit gates.
        two_qubit_depth: Depth counting only two-qubit gates.
        estimated_fidelity: Product of ``(1 - error)`` over every gate and every read-out qubit, from the backend
            target's calibration (1.0 without calibration). A model, not a measurement.
        layout: Device qubit of each logical wire.
    """

    logical_qubits: int
    depth: int
    two_qubit_gates: int
    two_qubit_depth: int
    estimated_fidelity: float
    layout: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Transpiled:
    """An ISA circuit with its mapped observables and report (``parameters`` are the source circuit's)."""

    circuit: QuantumCircuit
    observables: tuple[SparsePauliOp, ...]
    report: TranspileReport


def _error(target: Any, name: str, qubits: tuple[int, ...]) -> float:
    try:
        props = target[name][qubits]
    except (KeyError, TypeError):
        return 0.0
    return float(props.error or 0.0) if props is not None else 0.0


def measured_qubits(observables: tuple[SparsePauliOp, ...]) -> list[int]:
    """Qubits on which any observable has a non-identity Pauli (these are read out)."""
    out: set[int] = set()
    for obs in observables:
        for p in obs.paulis:
            out.update(int(q) for q in (p.z | p.x).nonzero()[0])
    return sorted(out)


def estimate_fidelity(circuit: QuantumCircuit, observables: tuple[SparsePauliOp, ...], target: Any) -> float:
    """Product of ``(1 - error)`` of every instruction and every measured qubit's readout, from ``target``."""
    if target is None:
        return 1.0
    log_f = 0.0
    for inst in circuit.data:
        if inst.operation.name in ("barrier", "delay"):
            continue
        qs = tuple(circuit.find_bit(q).index for q in inst.qubits)
        log_f += math.log1p(-min(_error(target, inst.operation.name, qs), 0.999999))
    for q in measured_qubits(observables):
        log_f += math.log1p(-min(_error(target, "measure", (q,)), 0.999999))
    return math.exp(log_f)


def check_isa(circuit: QuantumCircuit, target: Any) -> None:
    """Raise ``ValueError`` if an instruction is not supported by ``target`` on its qubits."""
    for inst in circuit.data:
        qs = tuple(circuit.find_bit(q).index for q in inst.qubits)
        if inst.operation.name != "barrier" and not target.instruction_supported(inst.operation.name, qs):
            raise ValueError(f"{inst.operation.name} on {qs} is not in the backend target (not an ISA circuit)")


def check_aer_safe(circuit: QuantumCircuit) -> None:
    """Raise ``ValueError`` if a parameterized crx/cry/crz/cp remains (Aer binds them as angle 0)."""
    # Instruction.is_parameterized() reports False for these controlled gates in qiskit 2.6, so look at params
    bad = [
        i.operation.name
        for i in circuit.data
        if i.operation.name in _BROKEN_IN_AER and any(isinstance(p, ParameterExpression) for p in i.operation.params)
    ]
    if bad:
        raise ValueError(f"parameterized {sorted(set(bad))} would be misread by Aer; decompose them first")


def _interaction_order(circuit: QuantumCircuit) -> list[int]:
    """A greedy DFS order of wires through the circuit's two-qubit interaction graph."""
    adj: dict[int, set[int]] = {q: set() for q in range(circuit.num_qubits)}
    for inst in circuit.data:
        if len(inst.qubits) == 2:
            a, b = (circuit.find_bit(q).index for q in inst.qubits)
            adj[a].add(b)
            adj[b].add(a)
    order: list[int] = []
    while len(order) < circuit.num_qubits:
        start = min((q for q in adj if q not in order), key=lambda q: (len(adj[q]), q))
        stack = [start]
        while stack:
            q = stack.pop()
            if q in order:
                continue
            order.append(q)
            stack.extend(sorted(adj[q] - set(order), key=lambda r: -len(adj[r])))
    return order


def candidate_chains(backend: Any, length: int, *, beam: int = 64, keep: int = 4) -> list[list[int]]:
    """Chains of ``length`` coupled device qubits with the lowest calibrated error, best first (beam search).

    Score of a chain: sum of ``-log(1 - e)`` over its couplings' two-qubit errors and its qubits' readout errors.
    """
    target = backend.target
    two_q = [n for n in target.operation_names if target.operation_from_name(n).num_qubits == 2]
    edge_cost: dict[tuple[int, int], float] = {}
    for a, b in backend.coupling_map.get_edges():
        e = min((_error(target, g, (a, b)) or _error(target, g, (b, a)) for g in two_q), default=0.0)
        cost = -math.log1p(-min(e, 0.999999))
        key = (min(a, b), max(a, b))
        edge_cost[key] = min(cost, edge_cost.get(key, math.inf))
    neighbours: dict[int, list[int]] = {}
    for a, b in edge_cost:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)

    def q_cost(q: int) -> float:
        return -math.log1p(-min(_error(target, "measure", (q,)), 0.999999))

    beams = sorted(((q_cost(q), [q]) for q in neighbours), key=lambda t: t[0])[:beam] if length > 1 else []
    if length == 1:
        return [[q] for q in sorted(range(backend.num_qubits), key=q_cost)[:keep]]
    for _ in range(length - 1):
        grown = []
        for cost, chain in beams:
            for r in neighbours[chain[-1]]:
                if r not in chain:
                    grown.append((cost + edge_cost[(min(chain[-1], r), max(chain[-1], r))] + q_cost(r), chain + [r]))
        beams = sorted(grown, key=lambda t: t[0])[:beam]
    return [chain for _, chain in beams[:keep]]


class Transpiler:
    """Transpile specs (or their ancilla-eliminated branches) for one backend, with a memory and QPY cache.

    Args:
        backend: The resolved backend.
        optimization_level: Preset pass-manager level 0-3.
        layout_candidates: Calibration-ranked chains tried as ``initial_layout`` (0: the pass manager's own noise-aware
            layout only).
        cache_dir: Directory for ``<key>.qpy`` files; ``None`` keeps the cache in memory only.
        seed: ``seed_transpiler``, so a cached result equals a fresh one.

    Raises:
        ValueError: On an optimization level outside 0-3.
    """

    def __init__(
        self,
        backend: ResolvedBackend,
        *,
        optimization_level: int = 2,
        layout_candidates: int = 3,
        cache_dir: str | Path | None = None,
        seed: int = 1234,
    ) -> None:
        if optimization_level not in (0, 1, 2, 3):
            raise ValueError(f"optimization_level must be 0..3, got {optimization_level}")
        self.backend, self.optimization_level = backend, int(optimization_level)
        self.layout_candidates, self.seed = int(layout_candidates), int(seed)
        self.cache_dir = Path(cache_dir) / "transpiled" if cache_dir is not None else None
        self._memory: dict[str, Transpiled] = {}

    def options(self) -> dict:
        return {
            "optimization_level": self.optimization_level,
            "layout_candidates": self.layout_candidates,
            "seed": self.seed,
        }

    def _key(self, spec: CircuitSpec, pattern: tuple[int, ...] | None) -> str:
        blob = json.dumps([spec.fingerprint(), self.backend.name, self.options(), pattern], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def transpile(self, spec: CircuitSpec) -> Transpiled:
        """The faithful circuit (ancillas included) as an ISA circuit. Raises ``ValueError`` if too wide."""
        return self._cached(spec, None, lambda: (spec.circuit, spec.observables))

    def transpile_branch(self, spec: CircuitSpec, pattern: tuple[int, ...]) -> tuple[Branch, Transpiled]:
        """One ancilla-eliminated branch circuit (see :mod:`hardware.ancilla`) as an ISA circuit."""
        branch = branch_circuits(spec, pattern)
        return branch, self._cached(spec, tuple(pattern), lambda: (branch.circuit, branch.observables))

    def _cached(self, spec: CircuitSpec, pattern: tuple[int, ...] | None, source) -> Transpiled:
        key = self._key(spec, pattern)
        if key in self._memory:
            return self._memory[key]
        circuit, observables = source()
        if circuit.num_qubits > self.backend.num_qubits:
            raise ValueError(
                f"{spec.name}: {circuit.num_qubits} qubits do not fit on {self.backend.name} "
                f"({self.backend.num_qubits} qubits); try ancilla elimination or a larger backend"
            )
        path = self.cache_dir / f"{key}.qpy" if self.cache_dir is not None else None
        result = self._read(path, circuit, observables) if path is not None and path.is_file() else None
        if result is None:
            result = self._run(circuit, observables)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(path) as fh:  # a unique temporary name: two processes never tear one file
                    qpy.dump(result.circuit, fh)
        self._memory[key] = result
        return result

    def _read(self, path: Path, circuit: QuantumCircuit, observables: tuple[SparsePauliOp, ...]) -> Transpiled | None:
        """The cached ISA circuit at ``path`` if it loads and fits ``circuit`` and this backend; else None, with a
        one-line warning naming the file (the caller transpiles again and overwrites it)."""
        try:
            with open(path, "rb") as fh:
                isa = qpy.load(fh)[0]
            source = {p.name for p in circuit.parameters}
            foreign = sorted({p.name for p in isa.parameters} - source)  # the pass manager may drop, never add
            if foreign:
                raise ValueError(f"it has parameters {foreign[:3]} the circuit does not")
            if isa.num_qubits > self.backend.num_qubits or isa.num_qubits < circuit.num_qubits:
                raise ValueError(f"it has {isa.num_qubits} qubits")
            if self.backend.kind == "aer":
                check_aer_safe(isa)
            elif self.backend.has_calibration:
                check_isa(isa, self.backend.backend.target)
            return self._finish(isa, observables)
        except Exception as err:  # noqa: BLE001 - qpy raises many kinds on a torn or foreign file; all mean: recompute
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            kind = type(err).__name__
            log.warning("damaged transpile cache entry %s (%s: %s): transpiling again", path, kind, reason)
            return None

    def _finish(self, isa: QuantumCircuit, observables: tuple[SparsePauliOp, ...]) -> Transpiled:
        mapped = tuple(o.apply_layout(isa.layout) for o in observables) if isa.layout is not None else observables
        target = self.backend.backend.target if self.backend.has_calibration else None
        layout = tuple(isa.layout.initial_index_layout(filter_ancillas=True)) if isa.layout is not None else ()
        report = TranspileReport(
            logical_qubits=len(layout) or isa.num_qubits,
            depth=isa.depth(),
            two_qubit_gates=sum(1 for i in isa.data if i.operation.num_qubits == 2 and i.operation.name != "barrier"),
            two_qubit_depth=isa.depth(filter_function=lambda i: i.operation.num_qubits == 2),
            estimated_fidelity=estimate_fidelity(isa, mapped, target),
            layout=layout,
        )
        return Transpiled(isa, mapped, report)

    def _run(self, circuit: QuantumCircuit, observables: tuple[SparsePauliOp, ...]) -> Transpiled:
        lvl, seed = self.optimization_level, self.seed
        if self.backend.kind == "aer":
            pm = generate_preset_pass_manager(optimization_level=lvl, basis_gates=AER_BASIS, seed_transpiler=seed)
            result = self._finish(pm.run(circuit), observables)
            check_aer_safe(result.circuit)
            return result
        device = self.backend.backend
        layouts: list[list[int] | None] = [None]
        if self.layout_candidates > 0:
            order = _interaction_order(circuit)
            for chain in candidate_chains(device, circuit.num_qubits, keep=self.layout_candidates):
                initial = [0] * circuit.num_qubits
                for logical, physical in zip(order, chain):
                    initial[logical] = physical
                layouts.append(initial)
        best: Transpiled | None = None
        for initial in layouts:
            pm = generate_preset_pass_manager(
                optimization_level=lvl, backend=device, initial_layout=initial, seed_transpiler=seed
            )
            cand = self._finish(pm.run(circuit), observables)
            if best is None or cand.report.estimated_fidelity > best.report.estimated_fidelity:
                best = cand
        assert best is not None
        check_isa(best.circuit, device.target)
        return best


def report_dict(report: TranspileReport) -> dict:
    """JSON-able form of a report."""
    return asdict(report)
