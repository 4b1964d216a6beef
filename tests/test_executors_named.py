"""Executors by name: options dataclasses behind describe() and the config mapping, presets naming the ring, and the
run's log line of which executor runs which circuit."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from circuits import qffn_circuit
from qldm.presets import make_preset
from qldm.qffn import QFFNConfig
from qldm.quantum import QuantumLayer, make_executor
from qldm.quantum.executor import config_fields
from qldm.quantum.layer import executor_lines
from qldm.quantum.registry import EXECUTORS, executor_class

# one non-default value per executor, so a round trip that dropped an option would show
_NON_DEFAULT = {
    "statevector": {"dtype": "float64", "chunk_size": 3, "max_wires": 9, "cache_bytes": 1000},
    "tensornet": {"dtype": "float64", "chunk_size": 5, "max_chunk_elements": 999, "optimize": "dp"},
    "ring": {"dtype": "float64", "chunk_size": 6, "max_chunk_elements": 777},
    "branch": {"samples": 3, "dtype": "float64", "exact_if_at_most": 4, "max_data_qubits": 7},
    "aer": {"shots": 100, "seed": 4, "chunk_size": 8, "device": "CPU", "max_wires": 12},
}


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_describe_round_trips_through_the_options_dataclass(name):
    if name == "aer":
        pytest.importorskip("qiskit_aer")
    ex = make_executor(name, **_NON_DEFAULT[name])
    d = json.loads(json.dumps(ex.describe()))
    names = [f.name for f in dataclasses.fields(executor_class(name).Options)]
    assert list(d) == ["name", *names] and d["name"] == name
    for key, value in _NON_DEFAULT[name].items():
        assert d[key] == (f"torch.{value}" if key == "dtype" else value), key
    again = make_executor(**d)
    assert again.describe() == d and again.options == ex.options


def test_config_mapping_comes_from_the_options():
    assert config_fields(executor_class("ring")) == {"dtype": "executor_dtype", "chunk_size": "executor_chunk_size"}
    assert config_fields(executor_class("tensornet"))["optimize"] == "tn_optimize"
    cfg = QFFNConfig(executor="tensornet", executor_dtype=torch.float64, executor_chunk_size=9, tn_optimize="dp")
    assert cfg.executor_options() == {"dtype": torch.float64, "chunk_size": 9, "optimize": "dp"}
    ring = QFFNConfig(executor="ring", executor_chunk_size=9, tn_optimize="dp")  # tn_optimize is not the ring's
    assert ring.executor_options() == {"dtype": ring.executor_dtype, "chunk_size": 9}
    assert ring.make_executor().describe()["chunk_size"] == 9


@pytest.mark.parametrize("preset", ["anime64", "paper"])
def test_presets_name_the_ring_for_the_16_qubit_qffn(preset):
    qffn = make_preset(preset).model.qffn
    assert (qffn.executor, qffn.n_qubits) == ("ring", 16)
    assert type(qffn.validate().make_executor()).__name__ == "RingExecutor"


def test_config_naming_the_ring_for_a_circuit_it_cannot_run_is_refused():
    with pytest.raises(ValueError, match="'ring' executor runs only"):
        QFFNConfig(n_qubits=3, n_layers=5, executor="ring").validate()


def test_executor_lines_name_each_executor_once():
    ring, sv = make_executor("ring"), make_executor("statevector")
    module = torch.nn.Sequential(
        QuantumLayer(qffn_circuit(3), executor=ring),
        QuantumLayer(qffn_circuit(3), executor=ring),
        QuantumLayer(qffn_circuit(2), executor=sv),
    )
    lines = executor_lines(module)
    assert len(lines) == 2
    assert lines[0].startswith("executor RingExecutor(") and "runs 2 circuit layer(s)" in lines[0]
    assert lines[1].startswith("executor StatevectorExecutor(") and "runs 1 circuit layer(s)" in lines[1]


def test_emulator_runs_a_32_wire_qffn_on_the_ring():
    pytest.importorskip("qiskit_ibm_runtime")
    from hardware.emulator import _exact

    assert type(_exact(qffn_circuit(16, 2, "per-qubit", "ring"), torch.float64)).__name__ == "RingExecutor"
    assert type(_exact(qffn_circuit(16, 5, "per-qubit", "ring"), torch.float64)).__name__ == "TensorNetworkExecutor"
    assert type(_exact(qffn_circuit(4), torch.float64)).__name__ == "StatevectorExecutor"
