"""``qldm hardware study``: conditions, the micro-size run, resume, the emulator against Aer, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hardware.study import AER_MAX_WIRES, conditions, parse_shots, parse_step_selectors, pixel_change
from qldm.cli import main

MICRO_ONLY = ["--set", "model.qffn.mode=quantum-only", "--set", "model.quantum_blocks=all", "--set", "sample.seeds=0"]


@pytest.fixture(scope="module")
def quantum_only_run(tmp_path_factory):
    """A micro run (2 data qubits, per-qubit ancillas: 4 wires) whose every transformer FFN is the circuit."""
    out = tmp_path_factory.mktemp("study") / "run"
    assert main(["train", "--preset", "micro", "--out", str(out), "--no-progress", *MICRO_ONLY]) == 0
    return out


def test_conditions_follow_the_circuit_width():
    narrow = conditions(["exact", "shots", "emulator", "emulator-elim", "aer"], [64, 1024], ["last:1"], wires=4,
                        eliminated_wires=2, has_ancillas=True)  # fmt: skip
    assert [c.key for c in narrow[:5]] == [
        "exact",
        "shots_s64_last1",
        "emulator_s64_last1",
        "emulator-elim_s64_last1",
        "aer_s64_last1",
    ]
    assert len(narrow) == 1 + 2 * 4
    wide = conditions(["exact", "emulator", "aer"], [64], ["all"], wires=32, eliminated_wires=16, has_ancillas=True)
    assert [c.kind for c in wide] == ["exact", "emulator"]  # 16 eliminated wires > AER_MAX_WIRES
    assert AER_MAX_WIRES < 16
    plain = conditions(["emulator-elim", "aer"], [8], ["0-2"], wires=6, eliminated_wires=6, has_ancillas=False)
    assert [c.key for c in plain] == ["aer_s8_0to2"]
    with pytest.raises(ValueError, match="unknown condition kind"):
        conditions(["noisy"], [8], ["all"], wires=2, eliminated_wires=2, has_ancillas=False)


def test_selectors_and_shots_are_checked_against_the_sampler():
    assert parse_shots("64, 256") == [64, 256]
    assert parse_step_selectors("last:5,all,0-3", 25) == ["last:5", "all", "0-3"]
    for bad in ("0", "-4", "x", ""):
        with pytest.raises(ValueError, match="--shots"):
            parse_shots(bad)
    for bad, match in (("20-30", "outside"), ("last:0", "K >= 1"), ("3-1", "i <= j"), ("last:26", "more than")):
        with pytest.raises(ValueError, match=match):
            parse_step_selectors(bad, 25)


def test_pixel_change_is_the_mean_grey_level_difference_with_a_paired_interval():
    rng = np.random.default_rng(0)
    exact = rng.uniform(-1, 1, (6, 3, 4, 4))
    other = np.clip(exact + rng.normal(0, 0.05, exact.shape), -1, 1)
    got = pixel_change(other, exact)
    a, b = np.round((other + 1) * 127.5), np.round((exact + 1) * 127.5)
    per = np.abs(a - b).reshape(6, -1).mean(1)
    assert got["mean"] == pytest.approx(per.mean()) and got["max"] == np.abs(a - b).max()
    half = 2.5705818366147395 * per.std(ddof=1) / np.sqrt(6)  # t(0.975, 5)
    assert got["ci_high"] - got["mean"] == pytest.approx(half)
    assert pixel_change(exact, exact)["mean"] == 0.0


@pytest.mark.slow
def test_micro_study_writes_every_field_and_resumes_without_resampling(quantum_only_run, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["hardware", "study", "--run", str(quantum_only_run), "--backend", "fake:FakeManilaV2", "--kinds"]
    args += ["exact,emulator,aer", "--shots", "64", "--hardware-steps", "last:1", "--n", "4", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    study = json.loads((out / "study.json").read_text())
    rows = {r["key"]: r for r in study["conditions"]}
    assert list(rows) == ["exact", "emulator_s64_last1", "aer_s64_last1"]
    for r in rows.values():
        assert {"fid", "hf_ratio", "hair_accuracy", "pixel_change", "pubs", "shots_per_image"} <= set(r)
        assert "qpu_seconds_per_image" in r
        assert r["n"] == 4 and r["fid"] is None  # 4 images are too few for a FID
    assert rows["exact"]["pixel_change"]["mean"] == 0 and rows["exact"]["qpu_seconds_per_image"] == 0
    emu = rows["emulator_s64_last1"]
    assert emu["pixel_change"]["mean"] > 0 and emu["pubs"] > 0 and emu["shots"] == 64
    from hardware.sampling import plan
    from qldm.config import load_config

    cfg = load_config(quantum_only_run)
    p = plan(cfg.model, "fake:FakeManilaV2", blocks="all", steps="last:1", total_steps=cfg.sample.steps, shots=64)
    assert emu["qpu_seconds_per_image"] == pytest.approx(p["qpu_time_model_s"])
    assert emu["shots_per_image"] == p["shots"] == 64 * p["parameter_sets"]
    check = study["emulator_vs_aer"][0]
    assert check["aer"] == "aer_s64_last1" and check["emulator_vs_aer"]["n"] == 4
    for f in ("study.png", "grid.png"):
        assert (out / f).stat().st_size > 5_000
    stamps = {k: (out / k / "set.json").stat().st_mtime_ns for k in rows}
    assert main([*args, "--no-progress"]) == 0  # a rerun reuses every finished condition
    assert {k: (out / k / "set.json").stat().st_mtime_ns for k in rows} == stamps
    assert json.loads((out / "study.json").read_text())["conditions"] == study["conditions"]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--shots", "0"], "--shots must all be >= 1"),
        (["--backend", "aer"], "has no calibration data"),
        (["--hardware-steps", "0-40"], "outside"),
        (["--kinds", "exact,noisy"], "--kinds takes"),
    ],
)
def test_bad_study_input_is_one_line_exit_2_and_writes_nothing(quantum_only_run, extra, fragment, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["hardware", "study", "--run", str(quantum_only_run), "--backend", "fake:FakeManilaV2", "--n", "2"]
    args += ["--hardware-steps", "last:1", "--out", str(out), "--no-progress"]
    for i in range(0, len(extra), 2):  # the later option wins in argparse; replace it where it exists
        if extra[i] in args:
            args[args.index(extra[i]) + 1] = extra[i + 1]
        else:
            args += extra[i : i + 2]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not out.exists()


def test_a_run_without_a_circuit_is_refused(tmp_path, capsys):
    from qldm.config import apply_overrides, make_preset, save_config
    from qldm.models import build_pipeline

    cfg = apply_overrides(make_preset("micro"), ["model.quantum_blocks=none"])
    run = tmp_path / "run"
    build_pipeline(cfg.model).save_pretrained(run / "pipeline")
    save_config(cfg, run / "pipeline" / "run_config.json")
    capsys.readouterr()
    args = ["hardware", "study", "--run", str(run), "--backend", "fake:FakeManilaV2", "--out", str(tmp_path / "s")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no circuit" in err[0]


def test_an_ibm_study_prints_the_modelled_cost_and_submits_nothing_without_yes(quantum_only_run, tmp_path, capsys,
                                                                              monkeypatch):  # fmt: skip
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    import hardware.sampling as sampling
    from hardware.backends import ResolvedBackend

    device = ResolvedBackend(name="ibm:ibm_torino", kind="ibm", backend=FakeTorino(), service=None)
    monkeypatch.setattr(sampling, "resolve_backend", lambda name: device)
    submitted = []
    monkeypatch.setattr("hardware.executor.RuntimeExecutor.submit", lambda *a, **k: submitted.append(a))
    out = tmp_path / "study"
    args = ["hardware", "study", "--run", str(quantum_only_run), "--backend", "ibm:ibm_torino", "--shots", "64,1024"]
    assert main([*args, "--hardware-steps", "last:1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nothing submitted without --yes" in text and text.count("(a model)") == 2
    assert not submitted and not out.exists()
