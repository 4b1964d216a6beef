"""Every command answers a bad input with exit code 2, exactly one line on stderr and no traceback.

The inputs fail where they are parsed or validated, or on tiny files written into ``tmp_path`` (an untrained micro
pipeline saved once per module), so the sweep trains nothing. OS errors that root or this machine cannot produce
for real (a full disk) are injected as ``OSError(ENOSPC)``.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from qldm.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Damaged and garbled inputs: a pipeline and a checkpoint with truncated weights, bad JSON files."""
    from qldm.config import make_preset, save_config
    from qldm.models import build_pipeline

    root = tmp_path_factory.mktemp("bad-inputs")
    cfg = make_preset("micro")
    pipe = build_pipeline(cfg.model)
    good = root / "good"
    pipe.save_pretrained(good)
    save_config(cfg, good / "run_config.json")
    run = root / "run"
    pipe.save_pretrained(run / "pipeline")
    save_config(cfg, run / "pipeline" / "run_config.json")
    save_config(cfg, run / "run_config.json")
    weights = run / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])  # torn by a crash
    pipe.vae.save_pretrained(run / "vae")
    step = run / "checkpoints" / "step-00000001"
    step.mkdir(parents=True)
    save_config(cfg, step / "run_config.json")
    (step / "ema.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbled")
    unet = root / "unet"
    pipe.unet.save_pretrained(unet)
    (unet / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors at all")
    garbled = root / "garbled.json"
    garbled.write_text('{"train": {"epochs": 3,')
    wrong_type = root / "wrong_type.json"
    whole = json.loads(save_config(cfg, root / "whole.json").read_text())  # complete, so only the type is wrong
    wrong_type.write_text(json.dumps({**whole, "train": {**whole["train"], "epochs": "many"}}))
    bp_torn = root / "bp.json"
    bp_torn.write_text('{"points": [{"design": "none", ')
    empty = root / "empty"
    empty.mkdir()
    a_file = root / "a_file"
    a_file.write_text("I am a file, not a folder")
    return {
        "good": good,
        "run": run,
        "checkpoint": step,
        "unet": unet,
        "garbled": garbled,
        "wrong_type": wrong_type,
        "bp_torn": bp_torn,
        "empty": empty,
        "a_file": a_file,
    }


# (arguments, a fragment the one line must contain); "{name}" is replaced by the fixture path of that name, "{tmp}"
# by a fresh folder. Each row fails at parse or validation time or on a tiny damaged file.
CASES: list[tuple[list[str], str]] = [
    # train / train-vae / demo: config ranges and types, checked once where the config is parsed
    (["train", "--set", "train.vae_epochs=0", "--out", "{tmp}/o"], "train.vae_epochs must be >= 1"),
    (["train", "--set", "train.vae_epochs=-1", "--out", "{tmp}/o"], "train.vae_epochs must be >= 1"),
    (["train", "--set", "train.checkpoint_every=-5", "--out", "{tmp}/o"], "train.checkpoint_every must be >= 0"),
    (["train", "--set", "train.warmup_steps=-1", "--out", "{tmp}/o"], "train.warmup_steps must be >= 0"),
    (["train", "--set", "train.num_workers=-2", "--out", "{tmp}/o"], "train.num_workers must be >= 0"),
    (["train", "--set", "train.lr_quantum=nan", "--out", "{tmp}/o"], "train.lr_quantum must be a finite float"),
    (["train", "--set", "sample.guidance=nan", "--out", "{tmp}/o"], "sample.guidance must be a finite float"),
    (["train", "--set", "model.vae_block_channels=0,8", "--out", "{tmp}/o"], "vae_block_channels must be >= 1"),
    (["train", "--set", "model.cfg_dropout=1.5", "--out", "{tmp}/o"], "cfg_dropout must be in [0, 1]"),
    (["train", "--set", "model.qffn.n_qubits=0", "--out", "{tmp}/o"], "qffn.n_qubits must be >= 1"),
    (["train", "--set", "data.limit=0", "--out", "{tmp}/o"], "data.limit must be >= 1"),
    (["train", "--config", "{garbled}", "--out", "{tmp}/o"], "garbled.json"),
    (["train", "--config", "{wrong_type}", "--out", "{tmp}/o"], "train.epochs must be an int"),
    (["train", "--config", "{tmp}/none.json", "--out", "{tmp}/o"], "no run config"),
    (["train", "--set", "data.source={empty}", "--out", "{tmp}/o"], "clear it with --set data.holdout=none"),
    (["train", "--set", "data.holdout=none", "--set", "data.source={empty}", "--out", "{tmp}/o"], "no images"),
    (["train", "--bogus-flag", "--out", "{tmp}/o"], "unrecognized arguments"),
    (["train-vae", "--set", "train.vae_epochs=0", "--out", "{tmp}/o"], "train.vae_epochs must be >= 1"),
    (["train-vae", "--set", "train.vae_lr=0", "--out", "{tmp}/o"], "train.vae_lr must be > 0"),
    (["demo", "--n", "0", "--out", "{tmp}/o"], "--n: must be >= 1"),
    (["demo", "--batch-size", "-1", "--out", "{tmp}/o"], "--batch-size: must be >= 1"),
    (["demo", "--set", "train.epochs=0", "--out", "{tmp}/o"], "train.epochs must be >= 1"),
    # sample
    (["sample", "--run", "{run}", "--steps", "0", "--out", "{tmp}/s"], "--steps: must be >= 1"),
    (["sample", "--run", "{run}", "--guidance", "nan", "--out", "{tmp}/s"], "--guidance: must be a finite number"),
    (["sample", "--run", "{run}", "--n", "0", "--out", "{tmp}/s"], "--n: must be >= 1"),
    (["sample", "--run", "{run}", "--n", "two", "--out", "{tmp}/s"], "expected an integer"),
    (["sample", "--run", "{run}", "--shots", "0", "--out", "{tmp}/s"], "--shots: must be >= 1"),
    (["sample", "--run", "{run}", "--quantum-backend", "bogus", "--out", "{tmp}/s"], "unknown backend 'bogus'"),
    (["sample", "--run", "{run}", "--quantum-backend", "FakeTorino", "--out", "{tmp}/s"], "fake:FakeTorino"),
    (["sample", "--run", "{tmp}/missing", "--out", "{tmp}/s"], "has no pipeline/"),
    (["sample", "--run", "{run}", "--out", "{tmp}/s"], "diffusion_pytorch_model.safetensors"),
    (["sample", "--checkpoint", "{checkpoint}", "--out", "{tmp}/s"], "step-00000001"),
    (["sample", "--checkpoint", "{empty}", "--out", "{tmp}/s"], "neither a pipeline folder"),
    (["sample", "--run", "{run}", "--hardware-cache", "x", "--no-hardware-cache", "--out", "{tmp}/s"], "not allowed"),
    (["sample", "--out", "{tmp}/s"], "one of the arguments --run --checkpoint is required"),
    # ablate
    (["ablate", "--run", "{run}", "--n", "1", "--out", "{tmp}/a"], "--n must be >= 2"),
    (["ablate", "--run", "{run}", "--modes", "none", "--out", "{tmp}/a"], "--modes takes"),
    (["ablate", "--run", "{run}", "--seeds", "0,0", "--out", "{tmp}/a"], "expected distinct integers >= 0"),
    (["ablate", "--run", "{run}", "--guidance", "nan", "--out", "{tmp}/a"], "--guidance must be a finite number"),
    (["ablate", "--run", "{tmp}/missing", "--out", "{tmp}/a"], "no pipeline/model_index.json"),
    # evaluate
    (["evaluate", "--run", "{run}", "--batch-size", "0", "--out", "{tmp}/e"], "--batch-size: must be >= 1"),
    (["evaluate", "--run", "{run}", "--n", "1", "--out", "{tmp}/e"], "--n: must be >= 2"),
    (["evaluate", "--run", "{run}", "--hf-cutoff", "0", "--out", "{tmp}/e"], "--hf-cutoff: must be > 0"),
    (["evaluate", "--run", "{run}", "--guidance", "inf", "--out", "{tmp}/e"], "must be a finite number"),
    (
        ["evaluate", "--run", "{run}", "--seeds", "a,b", "--out", "{tmp}/e"],
        "--seeds: expected comma-separated integers",
    ),
    (["evaluate", "--run", "{run}", "--seeds", "0,0", "--out", "{tmp}/e"], "--seeds: expected distinct integers >= 0"),
    (["evaluate", "--out", "{tmp}/e"], "give at least one --run or --images"),
    (["evaluate", "--run", "{run}", "--n", "2", "--seeds", "0", "--out", "{tmp}/e"], "safetensors"),
    (["evaluate", "--images", "{tmp}/missing", "--out", "{tmp}/e"], "is not a folder"),
    (["evaluate", "--images", "{empty}", "--out", "{tmp}/e"], "empty"),
    # circuit
    (["circuit", "--n-qubits", "0"], "--n-qubits: must be >= 1"),
    (["circuit", "--layers", "-1"], "--layers: must be >= 1"),
    (["circuit", "--ancillas", "bogus"], "bogus"),
    (["circuit", "--kind", "bogus"], "invalid choice"),
    (["circuit", "--qpy", "{a_file}/c.qpy"], "a_file"),
    # hardware
    (["hardware", "plan", "--backend", "aer", "--shots", "0"], "--shots: must be >= 1"),
    (["hardware", "plan", "--backend", "aer", "--shots", "-1"], "--shots: must be >= 1"),
    (["hardware", "plan", "--backend", "bogus"], "unknown backend 'bogus'"),
    (["hardware", "plan", "--backend", "aer", "--hardware-steps", "last:0"], "K >= 1"),
    (["hardware", "plan", "--backend", "aer", "--set", "model.qffn.n_qubits=-1"], "qffn.n_qubits must be >= 1"),
    (["hardware", "plan", "--backend", "aer", "--out", "{a_file}/plan.json"], "a_file"),
    (["hardware", "plan", "--backend", "ibm:ibm_torino", "--yes"], "no IBM Quantum credentials"),
    (["hardware", "transpile", "--backend", "aer", "--n-qubits", "0"], "--n-qubits: must be >= 1"),
    (["hardware", "transpile", "--backend", "aer", "--optimization-level", "5"], "invalid choice"),
    (["hardware", "emulate-check", "--backend", "aer"], "not usable here"),
    (["hardware", "emulate-check", "--tokens", "0"], "--tokens: must be >= 1"),
    (["hardware"], "required"),
    # bp
    (["bp", "--bootstrap", "0", "--out", "{tmp}/bp.json"], "--bootstrap: must be >= 1"),
    (["bp", "--n-qubits", "40", "--out", "{tmp}/bp.json"], "40-wire statevector"),
    (["bp", "--design", "bogus", "--out", "{tmp}/bp.json"], "unknown design(s) ['bogus']"),
    (["bp", "--resume", "--out", "{bp_torn}"], "bp.json"),
    (["bp", "--samples", "1", "--out", "{tmp}/bp.json"], "--samples: must be >= 2"),
    (["bp", "--shard", "3/2", "--out", "{tmp}/bp.json"], "shard must be I/M"),
    (["bp", "--memory-gb", "nan", "--out", "{tmp}/bp.json"], "--memory-gb: must be a finite number"),
    (["bp", "--n-qubits", "2,x", "--out", "{tmp}/bp.json"], "comma-separated integers"),
    (["bp", "--noise", "aer", "--out", "{tmp}/bp.json"], "not usable here"),
    # expressivity
    (["expressivity", "--inputs", "0", "--out", "{tmp}/x.json"], "--inputs: must be >= 2"),
    (["expressivity", "--weight-draws", "0", "--out", "{tmp}/x.json"], "--weight-draws: must be >= 1"),
    (["expressivity", "--sim-qubits", "20", "--out", "{tmp}/x.json"], "40-wire statevector"),
    (["expressivity", "--init", "bogus", "--out", "{tmp}/x.json"], "unknown init(s) ['bogus']"),
    (["expressivity", "--ancillas", "bogus", "--out", "{tmp}/x.json"], "bogus"),
    (["expressivity", "--n-qubits", "0", "--out", "{tmp}/x.json"], "integers >= 1"),
    # features
    (["features", "--train-steps", "0", "--out", "{tmp}/f"], "--train-steps: must be >= 1"),
    (["features", "--timestep", "5000", "--out", "{tmp}/f"], "--timestep must be < 1000"),
    (["features", "--checkpoint", "{tmp}/missing", "--out", "{tmp}/f"], "holds no QLDMUNet"),
    (["features", "--checkpoint", "{unet}", "--out", "{tmp}/f"], "unet"),
    (["features", "--out", "{a_file}/f"], "a_file"),
    # captioner-accuracy, fid-separation
    (["captioner-accuracy", "--root", "{tmp}/missing"], "missing"),
    (["captioner-accuracy", "--split", "bogus"], "invalid choice"),
    (["fid-separation", "--n", "4"], "--n: must be >= 8"),
    (["fid-separation", "--image-size", "0"], "--image-size: must be >= 1"),
    (["fid-separation", "--source", "{tmp}/missing", "--n", "8"], "not found"),
    # the top level
    (["no-such-command"], "invalid choice"),
]


def _fill(args: list[str], files: dict[str, Path], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)).format(**{k: str(v) for k, v in files.items()}) for a in args]


def _one_error_line(capsys, code: int) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (code, captured.err)
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert lines[0].startswith("qldm"), lines[0]
    return lines[0]


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as err:  # argparse exits from inside parse_args
        return int(err.code)


@pytest.mark.parametrize(("args", "fragment"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(args, fragment, files, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.setenv("QISKIT_IBM_ACCOUNT_FILE", str(tmp_path / "no-account.json"))
    line = _one_error_line(capsys, _exit_code(_fill(args, files, tmp_path)))
    assert fragment in line, line


def test_every_command_accepts_no_progress_and_debug_shows_the_traceback(capsys):
    from qldm.cli import COMMANDS, build_parser

    for name in COMMANDS:
        argv = [name, "plan", "--backend", "aer"] if name == "hardware" else [name]
        parser = build_parser(argv)
        sub = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[name]
        if name == "hardware":
            sub = next(a for a in sub._subparsers._group_actions if a.dest == "hw_command").choices["plan"]
        assert "--no-progress" in sub._option_string_actions, name
    with pytest.raises(ValueError, match="must be >= 1"):
        main(["--debug", "train", "--set", "train.epochs=0", "--out", "x"])
    with pytest.raises(SystemExit) as err:
        main(["--version"])
    assert err.value.code == 0 and capsys.readouterr().out.startswith("qldm ")


def test_full_disk_and_read_only_folder_are_one_line_naming_the_file(files, tmp_path, capsys, monkeypatch):
    # root ignores permission bits, so a read-only folder and a full disk are injected where files are written
    def refuse(code):
        def write_text(self, *args, **kwargs):
            raise OSError(code, os.strerror(code), str(self))

        return write_text

    sample = ["sample", "--checkpoint", str(files["good"]), "--steps", "1", "--n", "1", "--out", str(tmp_path / "s")]
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES):
        monkeypatch.setattr(Path, "write_text", refuse(code))
        for argv, name in ((sample, "prompts.txt"), (["circuit", "--qasm3", str(tmp_path / "c.qasm")], "c.qasm")):
            line = _one_error_line(capsys, _exit_code(argv))
            assert os.strerror(code) in line and name in line, line
    monkeypatch.undo()
    assert main([*sample, "--no-progress"]) == 0  # the same command with a working disk
    assert (tmp_path / "s" / "images" / "p00-000.png").is_file()


def test_offline_ibm_backend_says_network_or_credentials(tmp_path, capsys, monkeypatch):
    import qiskit_ibm_runtime

    class Offline:
        def __init__(self, **kwargs):
            raise ConnectionError("Max retries exceeded with url: https://auth.quantum.ibm.com (token=abc)")

    monkeypatch.setenv("QISKIT_IBM_TOKEN", "tok-SECRET-123")
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", Offline)
    line = _one_error_line(capsys, _exit_code(["hardware", "plan", "--backend", "ibm:ibm_torino", "--yes"]))
    assert "network" in line and "credentials" in line and "SECRET" not in line, line


def test_failed_hardware_job_is_one_line_with_exit_1(capsys, monkeypatch):
    import qldm.commands.circuit as circuit
    from hardware.jobs import HardwareJobError

    def fail(args):
        raise HardwareJobError("job on aer (job job-3) failed after 4 attempt(s): TimeoutError: x; rerun to collect it")

    monkeypatch.setattr(circuit, "run", fail)
    code = main(["circuit"])
    captured = capsys.readouterr()
    assert code == 1 and captured.err.strip().splitlines() == [
        "qldm circuit: error: job on aer (job job-3) failed after 4 attempt(s): TimeoutError: x; rerun to collect it"
    ]
