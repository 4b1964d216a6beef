"""``qldm bp --out`` never clobbers a result: an existing study needs ``--resume``; only ``.json`` is written."""

from __future__ import annotations

import pytest

from qldm.cli import main

SMALL = ["bp", "--design", "none", "--n-qubits", "2", "--layers", "2", "--samples", "4", "--bootstrap", "10"]


def test_an_existing_study_is_refused_without_resume(tmp_path, capsys):
    out = tmp_path / "bp.json"
    assert main([*SMALL, "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main([*SMALL, "--seed", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a study" in err[0] and "--resume" in err[0]
    assert out.read_bytes() == before  # untouched
    assert main([*SMALL, "--out", str(out), "--resume"]) == 0  # continuing it is fine


def test_any_existing_file_is_refused(tmp_path, capsys):
    out = tmp_path / "notes.json"
    out.write_text("my notes")
    assert main([*SMALL, "--out", str(out)]) == 2
    assert out.read_text() == "my notes"


@pytest.mark.parametrize("name", ["bp.csv", "bp.png", "bp"])
def test_out_other_than_json_is_refused_before_any_work(name, tmp_path, capsys):
    assert main([*SMALL, "--out", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes a .json study file" in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the PNG
