"""Every executor states its width limit and refuses a circuit past it before any work; the config check uses it."""

from __future__ import annotations

import pytest

from circuits import qffn_circuit
from qldm.cli import main
from qldm.quantum import make_executor
from qldm.quantum.aer import AerExecutor, aer_max_wires


def test_aer_states_its_limit_and_refuses_past_it():
    assert 20 <= aer_max_wires() <= 60  # Aer's own figure for this machine's memory
    small = AerExecutor(max_wires=4)
    small.check_spec(qffn_circuit(2))  # 4 wires fit
    with pytest.raises(ValueError, match=r"6 wires exceed max_wires \(4\)"):
        small.compile(qffn_circuit(3))
    assert make_executor(**small.describe()).max_wires == 4  # the limit travels with the description
    with pytest.raises(ValueError, match="Aer's statevector limit"):
        AerExecutor().check_spec(qffn_circuit(aer_max_wires()))  # 2n wires with per-qubit ancillas


def test_a_too_wide_aer_config_is_refused_before_the_data(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "micro", "--set", "model.qffn.executor=aer", "--set", "model.qffn.n_qubits=40"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "80 wires exceed Aer's statevector limit" in err[0]
    assert not out.exists()  # no stage 1, nothing written


def test_a_runtime_backend_refuses_a_circuit_wider_than_the_device():
    from hardware.executor import RuntimeExecutor

    ex = RuntimeExecutor("fake:FakeManilaV2")  # 5 qubits
    ex.check_spec(qffn_circuit(2))
    with pytest.raises(ValueError, match="6 wires exceed the 5 qubits of fake:FakeManilaV2; ancilla_elimination"):
        ex.compile(qffn_circuit(3))
    RuntimeExecutor("fake:FakeManilaV2", ancilla_elimination=True).check_spec(qffn_circuit(3))  # 3 data qubits
