"""Config files as people write them: YAML or JSON, partial, layered over ``--preset``; ``qldm config show``."""

from __future__ import annotations

import json

import pytest

from qldm.cli import main
from qldm.config import apply_overrides, config_to_dict, load_config, make_preset, save_config

PARTIAL_YAML = """\
# only what changes
train:
  epochs: 7
  lr_classical: 3e-4
model:
  qffn:
    n_qubits: 3
"""


def _show(argv: list[str], capsys) -> dict:
    assert main(["config", "show", "--format", "json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_yaml_and_json_files_give_the_same_config(tmp_path):
    (tmp_path / "c.yaml").write_text(PARTIAL_YAML)
    raw = {"train": {"epochs": 7, "lr_classical": 3e-4}, "model": {"qffn": {"n_qubits": 3}}}
    (tmp_path / "c.json").write_text(json.dumps(raw))
    base = make_preset("micro")
    from_yaml = load_config(tmp_path / "c.yaml", base=base)
    assert from_yaml == load_config(tmp_path / "c.json", base=base)
    assert from_yaml.train.lr_classical == 3e-4 and isinstance(from_yaml.train.lr_classical, float)


def test_config_is_layered_over_the_preset(tmp_path, capsys):
    (tmp_path / "c.yml").write_text(PARTIAL_YAML)
    shown = _show(["--preset", "micro", "--config", str(tmp_path / "c.yml"), "--set", "train.seed=5"], capsys)
    micro = json.loads(json.dumps(config_to_dict(make_preset("micro"))))  # tuples as JSON lists
    assert shown["name"] == "micro" and shown["data"] == micro["data"]  # the preset where the file is silent
    assert shown["train"]["epochs"] == 7 and shown["model"]["qffn"]["n_qubits"] == 3  # the file over it
    assert shown["model"]["qffn"]["n_layers"] == micro["model"]["qffn"]["n_layers"]  # nested sections merge
    assert shown["train"]["seed"] == 5  # --set last
    assert shown["model"]["unet_block_channels"] == micro["model"]["unet_block_channels"]


def test_a_saved_run_config_loads_as_saved(tmp_path, capsys):
    cfg = apply_overrides(make_preset("anime64"), ["train.epochs=2"])
    save_config(cfg, tmp_path / "run" / "run_config.json")
    assert _show(["--config", str(tmp_path / "run")], capsys) == json.loads(json.dumps(config_to_dict(cfg)))


def test_config_show_output_reads_back(tmp_path, capsys):
    argv = ["--preset", "tiny", "--set", "model.qffn.n_qubits=2", "--set", "data.holdout=none"]
    assert main(["config", "show", *argv, "--out", str(tmp_path / "eff.yaml")]) == 0
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "eff.yaml").read_text() and "n_qubits: 2" in printed
    expected = apply_overrides(make_preset("tiny"), ["model.qffn.n_qubits=2", "data.holdout=none"])
    assert load_config(tmp_path / "eff.yaml") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: [epochs: 3\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("train:\n  epochz: 3\n", "unknown keys ['epochz']"),
        ("train:\n  epochs: many\n", "train.epochs must be an int"),
    ],
)
def test_a_bad_yaml_file_is_one_line_naming_it(text, message, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["config", "show", "--preset", "micro", "--config", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.yaml" in err[0] and message in err[0], err
