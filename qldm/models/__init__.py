"""The latent diffusion model: config, VAE, text encoder, quantum U-Net, diffusion process and pipeline."""

from qldm.models.config import ModelConfig, QFFNConfig
from qldm.models.diffusion import (
    SAMPLERS,
    diffusion_loss,
    drop_captions,
    make_sample_scheduler,
    make_train_scheduler,
)
from qldm.models.hybridize import hybridize_unet, parameter_groups, transformer_block_names
from qldm.models.pipeline import QLDMPipeline, build_pipeline
from qldm.models.text import TextEncoder, build_text_encoder, check_tokenizer, minilm_path
from qldm.models.unet import CircuitMismatchError, FeedForward, QLDMUNet, build_unet, check_circuit_compatible
from qldm.models.vae import (
    CachedLatents,
    LatentCache,
    build_vae,
    decode_latents,
    encode_images,
    measure_latent_scale,
    vae_fingerprint,
)

__all__ = [
    "ModelConfig",
    "QFFNConfig",
    "build_vae",
    "measure_latent_scale",
    "encode_images",
    "decode_latents",
    "LatentCache",
    "CachedLatents",
    "vae_fingerprint",
    "TextEncoder",
    "build_text_encoder",
    "check_tokenizer",
    "minilm_path",
    "QLDMUNet",
    "FeedForward",
    "build_unet",
    "check_circuit_compatible",
    "CircuitMismatchError",
    "hybridize_unet",
    "transformer_block_names",
    "parameter_groups",
    "make_train_scheduler",
    "make_sample_scheduler",
    "diffusion_loss",
    "drop_captions",
    "SAMPLERS",
    "QLDMPipeline",
    "build_pipeline",
]
