"""Backends, transpilation, ancilla elimination by branch sampling, credentials and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.quantum_info import Statevector

import circuits
from hardware.ancilla import all_patterns, branch_circuits, branch_parameter_values, check_eliminable
from hardware.backends import BackendError, CredentialsError, resolve_backend
from hardware.transpile import Transpiler, check_aer_safe, check_isa


def _exact(circuit, observables):
    sv = Statevector(circuit)
    return np.array([sv.expectation_value(o).real for o in observables])


@pytest.mark.parametrize("ancillas", ["per-qubit", "shared"])
def test_branch_average_equals_full_circuit(ancillas):
    spec = circuits.qffn_circuit(3, 2, ancillas=ancillas)
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=3), rng.uniform(0, 2 * np.pi, spec.num_weights)
    full = _exact(spec.bind(x, w), spec.observables)
    k = len(spec.ancilla_qubits)
    total = np.zeros(spec.num_outputs)
    for pattern in all_patterns(k):
        b = branch_circuits(spec, pattern)
        assert b.circuit.num_qubits == 3
        assert not any(i.operation.name.startswith("cr") for i in b.circuit.data)  # no controlled rotations
        vals = branch_parameter_values(b, x[None], w)[0]
        total += _exact(b.circuit.assign_parameters(dict(zip(b.circuit.parameters, vals))), b.observables)
    np.testing.assert_allclose(total / 2**k, full, atol=1e-12)
    assert np.abs(full).max() > 1e-3  # not a trivially zero comparison


def test_branch_rejects_specs_without_control_only_ancillas():
    with pytest.raises(ValueError, match="no ancillas"):
        check_eliminable(circuits.qffn_circuit(2, 1, ancillas="none"))
    with pytest.raises(ValueError, match="pattern of length"):
        branch_circuits(circuits.qffn_circuit(2, 1), (1,))


def test_isa_circuits_and_report_on_fake_device(tmp_path):
    backend = resolve_backend("fake:FakeManilaV2")
    tr = Transpiler(backend, cache_dir=tmp_path)
    spec = circuits.qffn_circuit(2, 2)
    full = tr.transpile(spec)
    _, branch = tr.transpile_branch(spec, (1, 1))
    for t in (full, branch):
        check_isa(t.circuit, backend.backend.target)  # every op is in the target on its qubits
        assert set(t.circuit.count_ops()) <= set(backend.backend.target.operation_names)
        assert 0.0 < t.report.estimated_fidelity < 1.0
        assert t.report.two_qubit_depth <= t.report.two_qubit_gates
        assert all(o.num_qubits == backend.num_qubits for o in t.observables)
    assert full.report.logical_qubits == 4 and branch.report.logical_qubits == 2
    assert branch.report.two_qubit_gates < full.report.two_qubit_gates
    assert branch.report.estimated_fidelity > full.report.estimated_fidelity
    # the transpiled circuit with mapped observables still computes the spec's values (noiselessly)
    x, w = np.array([0.3, -1.2]), np.linspace(0.1, 2.0, spec.num_weights)
    col = {p.name: i for i, p in enumerate(spec.circuit.parameters)}
    vals = spec.parameter_values(x, w)
    bound = full.circuit.assign_parameters({p: vals[col[p.name]] for p in full.circuit.parameters})
    bound.remove_final_measurements()
    sv = Statevector.from_label("0" * backend.num_qubits).evolve(bound)
    got = [sv.expectation_value(o).real for o in full.observables]
    np.testing.assert_allclose(got, _exact(spec.bind(x, w), spec.observables), atol=1e-9)


def test_aer_transpile_decomposes_controlled_rotations():
    tr = Transpiler(resolve_backend("aer"))
    t = tr.transpile(circuits.qffn_circuit(2, 1))
    check_aer_safe(t.circuit)
    assert "crz" not in t.circuit.count_ops() and "cry" not in t.circuit.count_ops()
    with pytest.raises(ValueError, match="misread by Aer"):
        check_aer_safe(circuits.qffn_circuit(2, 1).circuit)


def test_transpile_cache_reloads_from_qpy(tmp_path, monkeypatch):
    backend = resolve_backend("fake:FakeManilaV2")
    spec = circuits.qffn_circuit(2, 1)
    first = Transpiler(backend, cache_dir=tmp_path).transpile(spec)
    assert list((tmp_path / "transpiled").glob("*.qpy"))
    fresh = Transpiler(backend, cache_dir=tmp_path)
    monkeypatch.setattr(fresh, "_run", lambda *a: pytest.fail("transpiled again despite the QPY cache"))
    again = fresh.transpile(circuits.qffn_circuit(2, 1))  # a rebuilt spec: same fingerprint
    assert again.report == first.report
    assert [str(o) for o in again.observables] == [str(o) for o in first.observables]


def test_circuit_wider_than_device_is_a_clear_error():
    tr = Transpiler(resolve_backend("fake:FakeManilaV2"))
    with pytest.raises(ValueError, match="do not fit on fake:FakeManilaV2"):
        tr.transpile(circuits.qffn_circuit(3, 1))  # 6 wires on 5 qubits
    tr.transpile_branch(circuits.qffn_circuit(3, 1), (1, 0, 1))  # the eliminated form fits


def test_unknown_backend_lists_valid_forms():
    for bad in ("nope", "fake:FakeNowhere", "aer-noise:", "ibm:"):
        with pytest.raises(BackendError) as err:
            resolve_backend(bad)
        assert "FakeManilaV2" in str(err.value)
        if bad == "nope":
            assert "aer-noise:<FakeName>" in str(err.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["hardware", "emulate-check", "--backend", "FakeManilaV2"],
        ["hardware", "transpile", "--backend", "FakeManilaV2"],
        ["hardware", "plan", "--backend", "FakeManilaV2"],
        ["bp", "--noise", "FakeManilaV2", "--out", "unused.json"],
        ["sample", "--run", "unused", "--quantum-backend", "FakeManilaV2", "--out", "unused"],
    ],
)
def test_every_command_takes_one_backend_name_format(argv, capsys):
    from qldm.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "aer-noise:FakeManilaV2" in err and "fake:FakeManilaV2" in err


def test_emulate_check_needs_a_calibrated_device(capsys):
    from qldm.cli import main

    assert main(["hardware", "emulate-check", "--backend", "aer"]) == 2
    assert "aer-noise:<FakeName>" in capsys.readouterr().err


def _no_credentials(monkeypatch, tmp_path):
    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_CHANNEL", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_ACCOUNT_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved account under ~/.qiskit


def test_missing_credentials_is_a_clear_error(monkeypatch, tmp_path, capsys):
    _no_credentials(monkeypatch, tmp_path)
    with pytest.raises(CredentialsError, match="QISKIT_IBM_TOKEN"):
        resolve_backend("ibm:ibm_torino")
    from qldm.cli import main

    assert main(["hardware", "transpile", "--backend", "ibm:ibm_torino", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "no IBM Quantum credentials" in err and "Traceback" not in err


def test_service_errors_never_echo_the_token(monkeypatch, tmp_path):
    _no_credentials(monkeypatch, tmp_path)
    secret = "tok-SECRET-9f8e7d"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", secret)

    def failing_service(**kwargs):
        raise RuntimeError(f"401 unauthorized for token {kwargs.get('token')}")

    import qiskit_ibm_runtime

    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", failing_service)
    with pytest.raises(CredentialsError) as err:
        resolve_backend("ibm:ibm_torino")
    assert secret not in str(err.value) and err.value.__cause__ is None


def test_real_device_needs_confirmation(monkeypatch, capsys):
    from qldm.cli import main

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["hardware", "plan", "--backend", "ibm:ibm_torino"]) == 2
    assert "--yes" in capsys.readouterr().err


def test_cli_transpile_table(capsys):
    from qldm.cli import main

    assert (
        main(
            [
                "hardware",
                "transpile",
                "--backend",
                "fake:FakeManilaV2",
                "--n-qubits",
                "2",
                "--ancilla-elimination",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "faithful" in out and "branch all-on" in out and "est. fidelity" in out


def test_cli_plan_and_emulate_check(capsys, tmp_path):
    from qldm.cli import main

    out_json = tmp_path / "plan.json"
    assert (
        main(
            [
                "hardware",
                "plan",
                "--backend",
                "aer",
                "--preset",
                "tiny",
                "--hardware-steps",
                "last:2",
                "--out",
                str(out_json),
            ]
        )
        == 0
    )
    import json

    p = json.loads(out_json.read_text())
    assert p["hardware_steps"] == 2 and p["jobs"] == 2 and p["pubs"] == 2  # one bottleneck block, 1 job/step
    assert p["parameter_sets"] == 2 * p["tokens_per_call"][0] and "model" in p["qpu_time_note"]
    # the run config comes from --preset/--config/--set, as in `qldm train`
    argv = ["hardware", "plan", "--backend", "aer", "--preset", "tiny", "--set", "sample.steps=7"]
    assert main([*argv, "--hardware-steps", "all", "--out", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["total_steps"] == 7
    assert main(["hardware", "plan", "--backend", "aer", "--set", "sample.nosuch=1"]) == 2
    assert (
        main(
            [
                "hardware",
                "emulate-check",
                "--backend",
                "aer-noise:FakeManilaV2",
                "--n-qubits",
                "2",
                "--tokens",
                "2",
                "--shots",
                "500",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "mean |emulator - aer|" in out and "ratio" in out
