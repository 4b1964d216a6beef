"""``QLDMPipeline``: the whole model (U-Net, VAE, text encoder, sampler) as a diffusers ``DiffusionPipeline``.

``save_pretrained`` writes ``model_index.json`` and one folder per component; ``from_pretrained``
rebuilds each by the (module, class) pair recorded there: ``QLDMUNet`` and ``TextEncoder`` are found in
``qldm.models.unet`` and ``qldm.models.text`` and loaded by their own ``from_pretrained``. Load with
``QLDMPipeline.from_pretrained`` (the generic ``DiffusionPipeline.from_pretrained`` looks the pipeline class
up inside diffusers). The denoising loop is written out in ``__call__``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from qldm.models.config import ModelConfig
from qldm.models.diffusion import make_sample_scheduler
from qldm.models.text import TextEncoder, build_text_encoder
from qldm.models.unet import QLDMUNet, build_unet
from qldm.models.vae import build_vae, decode_latents

__all__ = ["QLDMPipeline", "build_pipeline"]


class QLDMPipeline(DiffusionPipeline):
    """Text-to-image sampling with classifier-free guidance in the VAE's latent space.

    Args:
        unet: The denoiser.
        vae: The autoencoder; its ``config.scaling_factor`` is the measured latent scale.
        text_encoder: Prompt encoder; its ``empty()`` embedding is the unconditional branch, the same one that
            replaced dropped captions in training.
        scheduler: The sampler (DDIM, DPM-Solver++ or DDPM from ``make_sample_scheduler``).
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(
        self, unet: QLDMUNet, vae: AutoencoderKL, text_encoder: TextEncoder, scheduler: SchedulerMixin
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, vae=vae, text_encoder=text_encoder, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    def encode_prompt(
        self, prompts: list[str], num_images_per_prompt: int, guided: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text tokens for the U-Net: ``(hidden (n, L, D), mask (n, L))`` with ``n = B`` (unguided) or ``2B``
        (guided: the ``B`` empty-caption rows first, then the prompts), ``B = len(prompts) *
            num_images_per_prompt``.
        """
        hidden, mask = self.text_encoder.encode(prompts)  # (P, L, D), (P, L)
        hidden = hidden.repeat_interleave(num_images_per_prompt, dim=0)  # (B, L, D)
        mask = mask.repeat_interleave(num_images_per_prompt, dim=0)  # (B, L)
        if not guided:
            return hidden, mask
        empty_hidden, empty_mask = self.text_encoder.empty(hidden.shape[0])  # (B, L, D), (B, L)
        return torch.cat([empty_hidden, hidden]), torch.cat([empty_mask, mask])  # (2B, L, D), (2B, L)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        *,
        num_inference_steps: int = 25,
        guidance_scale: float = 4.0,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        on_step_begin: Callable[[int, int], None] | None = None,
        num_images_per_prompt: int = 1,
    ) -> ImagePipelineOutput:
        """Generate images.

        Args:
            prompt: One prompt or a list.
            num_inference_steps: Sampler steps.
            guidance_scale: CFG weight w in ``eps_u + w (eps_c - eps_u)``; 1 disables guidance (one U-Net pass).
            generator: Source of the initial noise (and of DDPM's per-step noise).
            output_type: ``"pil"`` (list of images), ``"np"`` ``(B, H, W, C)`` or ``"pt"`` ``(B, C, H, W)``,
                in [0, 1]; ``"latent"`` returns the final scaled latents.
            on_step_begin: Called as ``on_step_begin(step_index, timestep)`` before each denoising step (e.g.
                to switch some blocks to a hardware executor for chosen steps).
            num_images_per_prompt: Images per prompt; the output holds them prompt by prompt.

        Returns:
            ``ImagePipelineOutput(images=...)`` with ``len(prompts) * num_images_per_prompt`` images.

        Raises:
            ValueError: On empty prompts, non-positive steps or counts, or an unknown output type.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("need at least one prompt")
        if num_inference_steps < 1 or num_images_per_prompt < 1:
            raise ValueError("num_inference_steps and num_images_per_prompt must be >= 1")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type={output_type!r} is not one of 'pil', 'np', 'pt', 'latent'")
        modules = (self.unet, self.vae, self.text_encoder)
        was_training = [m.training for m in modules]
        for m in modules:
            m.eval()  # no dropout at inference (the original left attention dropout on)
        try:
            images = self._sample(
                prompts, num_inference_steps, guidance_scale, generator, output_type, on_step_begin,
                num_images_per_prompt,
            )  # fmt: skip
        finally:
            for m, mode in zip(modules, was_training):
                m.train(mode)
        return ImagePipelineOutput(images=images)

    def _sample(
        self,
        prompts: list[str],
        steps: int,
        guidance_scale: float,
        generator: torch.Generator | None,
        output_type: str,
        on_step_begin: Callable[[int, int], None] | None,
        per_prompt: int,
    ) -> Any:
        device, dtype = self.unet.device, self.unet.dtype
        guided = guidance_scale != 1.0
        hidden, mask = self.encode_prompt(prompts, per_prompt, guided)  # (n, L, D), (n, L)
        hidden = hidden.to(dtype)
        b = len(prompts) * per_prompt
        c, size = self.unet.model_config.latent_channels, self.unet.config.sample_size
        gen_device = generator.device if generator is not None else torch.device("cpu")
        latents = torch.randn((b, c, size, size), generator=generator, device=gen_device, dtype=torch.float32)
        latents = latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma  # (B, c, h, w)
        self.scheduler.set_timesteps(steps, device=device)
        step_kwargs = (
            {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        )
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            if on_step_begin is not None:
                on_step_begin(i, int(t))
            model_in = torch.cat([latents, latents]) if guided else latents  # (n, c, h, w)
            model_in = self.scheduler.scale_model_input(model_in, t)
            pred = self.unet(model_in, t, hidden, mask)  # (n, c, h, w)  eps or v
            if guided:
                pred_uncond, pred_cond = pred.chunk(2)  # (B, c, h, w) each
                pred = pred_uncond + guidance_scale * (pred_cond - pred_uncond)
            latents = self.scheduler.step(pred, t, latents, **step_kwargs).prev_sample  # (B, c, h, w)
        if output_type == "latent":
            return latents
        images = decode_latents(self.vae, latents, self.vae.config.scaling_factor)  # (B, C, H, W) in [-1, 1]
        return self.image_processor.postprocess(images.float(), output_type=output_type)


def build_pipeline(cfg: ModelConfig, *, scheduler: str = "ddim") -> QLDMPipeline:
    """Build a fresh (untrained) pipeline from a config: VAE, text encoder, U-Net and a sampler.

    Raises:
        ValueError: On an invalid config or a pretrained component that disagrees with it.
    """
    cfg.validate()
    vae = build_vae(cfg)
    text = build_text_encoder(cfg)
    unet = build_unet(cfg, sample_size=cfg.image_size // 2 ** (len(vae.config.block_out_channels) - 1))
    return QLDMPipeline(unet=unet, vae=vae, text_encoder=text, scheduler=make_sample_scheduler(scheduler, cfg))
