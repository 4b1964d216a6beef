"""Run configs: presets validate, ``--set`` overrides are typed, bad keys/values give one clear ValueError."""

from __future__ import annotations

import dataclasses

import pytest

from qldm.config import (
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    make_preset,
    save_config,
)
from qldm.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_validate_and_round_trip(name, tmp_path):
    cfg = make_preset(name).validate()
    assert cfg.name == name
    assert cfg.model.image_size == cfg.data.image_size
    save_config(cfg, tmp_path / "run_config.json")
    assert load_config(tmp_path) == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_preset_settings():
    tiny, paper = make_preset("tiny"), make_preset("paper")
    assert tiny.data.source == "procedural" and tiny.model.quantum_blocks == "bottleneck"
    assert 2 <= tiny.model.qffn.n_qubits <= 4 and tiny.model.qffn.executor == "statevector"
    assert tiny.data.holdout  # the demo prompts combos training never showed
    assert (paper.model.image_size, paper.model.qffn.n_qubits, paper.model.qffn.ancillas) == (128, 16, "per-qubit")
    assert (paper.model.qffn.executor, paper.model.quantum_blocks) == ("ring", "all")
    assert (paper.train.lr_classical, paper.train.lr_quantum, paper.train.lr_gate) == (1e-4, 5e-4, 1e-6)
    assert (paper.train.batch_size, paper.train.ema_decay) == (64, 0.999)
    assert paper.model.latent_size == 16  # the original's 4x16x16 latents
    # presets are fresh objects from functions: no shared mutable state
    assert make_preset("tiny") is not make_preset("tiny")


def test_overrides_parse_each_type():
    cfg = apply_overrides(
        make_preset("tiny"),
        [
            "train.epochs=3",  # int
            "train.lr_quantum=2.5e-3",  # float
            "train.gradient_checkpointing=true",  # bool
            "train.mixed_precision=bf16",  # Literal
            "train.max_steps=none",  # Optional
            "data.limit=100",  # Optional[int] with a value
            "data.holdout=blue/long,pink/bob",  # tuple[str, ...]
            "model.qffn.n_qubits=2",  # a nested section
            "model.unet_block_channels=32,64",  # tuple[int, ...]
            "sample.prompts=anime face",
            "name=mine",
        ],
    )
    assert cfg.train.epochs == 3 and cfg.train.lr_quantum == 2.5e-3 and cfg.train.gradient_checkpointing is True
    assert cfg.train.mixed_precision == "bf16" and cfg.train.max_steps is None and cfg.data.limit == 100
    assert cfg.data.holdout == ("blue/long", "pink/bob") and cfg.model.qffn.n_qubits == 2
    assert cfg.model.unet_block_channels == (32, 64) and cfg.sample.prompts == ("anime face",)
    assert cfg.name == "mine"
    # the input config is frozen and unchanged
    assert make_preset("tiny").train.epochs != 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=three", "train.epochs='three' is not an int"),
        ("train.lr_quantum=fast", "is not a float"),
        ("train.gradient_checkpointing=maybe", "is not a bool"),
        ("train.mixed_precision=fp8", "is not one of ['no', 'fp16', 'bf16']"),
        ("train.nosuch=1", "unknown config key 'train.nosuch'"),
        ("nosuch.key=1", "unknown config key 'nosuch.key'"),
        ("epochs=3", "unknown config key 'epochs'"),
        ("train.epochs", "not of the form"),
        ("model.qffn.n_qubits=20", "needs 40 wires"),  # cannot fit the statevector executor
        ("model.n_qubits=3", "did you mean 'model.qffn.n_qubits'"),  # the key moved into the Q-FFN section
        ("model.qffn=3", "is a section"),
        ("model.qffn.executor_dtype=float16", "is not one of ['float32', 'float64']"),
        ("model.quantum_blocks=middle", "quantum_blocks='middle'"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("train.ema_decay=1.5", "ema_decay"),
        ("data.image_size=64", "differs from data.image_size"),
        ("data.holdout=blue-long", "colour/style"),
    ],
)
def test_bad_overrides_raise_one_clear_error(override, message):
    with pytest.raises(ValueError) as err:
        apply_overrides(make_preset("tiny"), [override])
    assert message in str(err.value)


def test_unknown_preset_and_unknown_json_key(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        make_preset("huge")
    raw = config_to_dict(make_preset("tiny"))
    raw["train"]["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        config_from_dict(raw)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.json")


def test_default_runconfig_is_valid():
    assert isinstance(RunConfig().validate(), RunConfig)


def test_executor_options_reach_the_executor():
    cfg = apply_overrides(
        make_preset("micro"),
        ["model.qffn.executor=branch", "model.qffn.branch_samples=3", "model.qffn.executor_dtype=float64"],
    )
    executor = cfg.model.qffn.make_executor()
    assert (executor.name, executor.samples, str(executor.dtype)) == ("branch", 3, "torch.float64")
    tn = apply_overrides(make_preset("micro"), ["model.qffn.executor=tensornet", "model.qffn.tn_optimize=dp"])
    assert tn.model.qffn.make_executor().describe()["optimize"] == "dp"
    with pytest.raises(ValueError, match="optimiser"):
        apply_overrides(make_preset("micro"), ["model.qffn.executor=tensornet", "model.qffn.tn_optimize=nope"])


def test_nested_qffn_config_round_trips_and_names_unknown_nested_keys(tmp_path):
    cfg = apply_overrides(make_preset("micro"), ["model.qffn.readout=local", "model.qffn.executor_chunk_size=64"])
    save_config(cfg, tmp_path / "run_config.json")
    back = load_config(tmp_path)
    assert back == cfg and back.model.qffn.readout == "local" and back.model.unet_block_channels == (16, 32)
    raw = config_to_dict(cfg)
    raw["model"]["qffn"]["n_qbits"] = 2
    with pytest.raises(ValueError, match=r"model.qffn: unknown keys \['n_qbits'\]"):
        config_from_dict(raw)
