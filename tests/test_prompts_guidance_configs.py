"""Prompts past the text encoder's limit, guidance below 0 and incomplete run configs (cases 8, 9 and 10 of the
reliability issue): one line each, and nothing written where the command is refused."""

from __future__ import annotations

import json

import pytest

from qldm.cli import main
from qldm.config import make_preset, save_config


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from qldm.models import build_pipeline

    folder = tmp_path_factory.mktemp("pipe") / "pipe"
    cfg = make_preset("micro")
    build_pipeline(cfg.model).save_pretrained(folder)
    save_config(cfg, folder / "run_config.json")
    return folder


def _sample(pipe, out, *extra):
    return ["sample", "--checkpoint", str(pipe), "--n", "1", "--steps", "1", "--no-progress", "--out", str(out), *extra]


def test_a_prompt_past_the_encoder_limit_warns_once_with_its_token_count(pipe, tmp_path, capsys):
    limit = make_preset("micro").model.max_text_length
    long = "a" * (limit + 36)  # byte tokens: one per character, plus EOS
    capsys.readouterr()
    assert main(_sample(pipe, tmp_path / "warn", "--prompt", "short face", "--prompt", long)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"qldm sample: warning: 1 prompt(s) longer than the text encoder's {limit} tokens: p01 ({limit + 37} tokens); "
        f"the tokens past {limit} are ignored (--strict refuses them)"
    ]
    assert sorted(p.name for p in (tmp_path / "warn" / "images").iterdir()) == ["p00-000.png", "p01-000.png"]

    assert main(_sample(pipe, tmp_path / "strict", "--prompt", long, "--strict")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qldm sample: error: 1 prompt(s) longer") and "(--strict)" in err[0]
    assert not (tmp_path / "strict" / "images").exists()


@pytest.mark.parametrize("command", ["sample", "evaluate"])
def test_negative_guidance_is_refused(pipe, tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = _sample(pipe, out) if command == "sample" else ["evaluate", "--run", str(tmp_path), "--out", str(out)]
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:  # refused while the options are parsed, before anything runs
        main([*argv, "--guidance", "-1"])
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"qldm {command}: error: argument --guidance: must be >= 0, got '-1'" in err[0], err
    assert not out.exists()


def test_the_pipeline_refuses_negative_guidance(pipe):
    from qldm.models import QLDMPipeline

    with pytest.raises(ValueError, match=r"guidance_scale must be a finite number >= 0 \(1 = off\), got -1"):
        QLDMPipeline.from_pretrained(pipe)("a face", num_inference_steps=1, guidance_scale=-1.0)


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        (("model",), "['model']"),
        (("model", "qffn", "n_qubits"), "['model.qffn.n_qubits']"),
        (("train", "lr_quantum"), "['train.lr_quantum']"),
    ],
)
def test_a_run_config_missing_a_section_or_field_is_refused(tmp_path, capsys, drop, named):
    raw = json.loads(save_config(make_preset("micro"), tmp_path / "full.json").read_text())
    section = raw
    for key in drop[:-1]:
        section = section[key]
    if drop[-1] not in section:  # a preset field name that moved: the test must notice, not pass vacuously
        pytest.fail(f"{'.'.join(drop)} is not in a saved config")
    del section[drop[-1]]
    cfg = tmp_path / "run_config.json"
    cfg.write_text(json.dumps(raw))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"run config {cfg}: missing " in err[0] and "never filled with defaults" in err[0], err
    assert named in err[0] and ".".join(drop) in err[0]
    assert not (out / "checkpoints").exists() and not (out / "vae").exists()  # nothing trained
