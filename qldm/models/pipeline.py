"""``QLDMPipeline``: the whole model (U-Net, VAE, text encoder, sampler) as a diffusers ``DiffusionPipeline``.

``save_pretrained`` writes ``model_index.json``, one folder per component, and ``qldm_pipeline.py``, a one-line file
that imports this class. ``model_index.json`` names the pipeline ``["qldm_pipeline", "QLDMPipeline"]``, diffusers'
convention for a pipeline defined in the folder, so ``DiffusionPipeline.from_pretrained(path, trust_remote_code=True)``
loads it without the caller naming the class (diffusers asks for ``trust_remote_code`` before it runs any file from a
folder). The components are recorded as (module, class) pairs such as ``["qldm.models.unet", "QLDMUNet"]``, which
diffusers imports and loads with their own ``from_pretrained``. ``QLDMPipeline.from_pretrained(path)`` needs no flag: it
runs the folder's ``qldm_pipeline.py`` only if it is exactly the file written here. The denoising loop is written out in
``__call__``.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from qldm.models.config import ModelConfig
from qldm.models.diffusion import make_sample_scheduler
from qldm.models.text import TextEncoder, build_text_encoder
from qldm.models.unet import QLDMUNet, build_unet
from qldm.models.vae import build_vae, decode_latents

__all__ = ["QLDMPipeline", "build_pipeline"]

_SHIM_MODULE = "qldm_pipeline"
_SHIM = (
    '"""Lets DiffusionPipeline.from_pretrained(folder, trust_remote_code=True) find the QLDM pipeline class."""\n\n'
    "from qldm.models.pipeline import QLDMPipeline  # noqa: F401\n"
)
StepEndCallback = Callable[[DiffusionPipeline, int, int, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def _as_list(value: str | list[str], what: str) -> list[str]:
    values = [value] if isinstance(value, str) else list(value)
    if not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{what} must be a string or a non-empty list of strings, got {value!r}")
    return values


class QLDMPipeline(DiffusionPipeline):
    """Text-to-image sampling with classifier-free guidance in the VAE's latent space.

    Args:
        unet: The denoiser.
        vae: The autoencoder; its ``config.scaling_factor`` is the measured latent scale.
        text_encoder: Prompt encoder; its ``empty()`` embedding is the unconditional branch, the same one that replaced
            dropped captions in training.
        scheduler: The sampler (DDIM, DPM-Solver++ or DDPM from ``make_sample_scheduler``).
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self, unet: QLDMUNet, vae: AutoencoderKL, text_encoder: TextEncoder, scheduler: SchedulerMixin
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, vae=vae, text_encoder=text_encoder, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self._guidance_scale, self._num_timesteps, self._interrupt = 1.0, 0, False

    # diffusers' callback conventions: a callback may read these, and set ``pipe._interrupt = True`` to stop early
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def trained_size(self) -> int:
        """Side of the images the model was trained on (pixels)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    # ------------------------------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """``DiffusionPipeline.save_pretrained``, then the class reference that the generic loader follows.

        Writes ``qldm_pipeline.py`` and sets ``model_index.json``'s ``_class_name`` to
        ``["qldm_pipeline", "QLDMPipeline"]`` (keyword arguments go to diffusers).
        """
        super().save_pretrained(save_directory, **kwargs)
        index = Path(save_directory) / "model_index.json"
        data = json.loads(index.read_text())
        data["_class_name"] = [_SHIM_MODULE, "QLDMPipeline"]
        index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        (Path(save_directory) / f"{_SHIM_MODULE}.py").write_text(_SHIM)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> QLDMPipeline:
        """Load a saved pipeline (keyword arguments as for ``DiffusionPipeline.from_pretrained``).

        A folder's ``qldm_pipeline.py`` that is the file :meth:`save_pretrained` writes only imports this class, so
        it runs without ``trust_remote_code``; folders saved before it existed load as well.

        Raises:
            ValueError: If the folder's ``qldm_pipeline.py`` was changed (it is then not run without
                ``trust_remote_code=True``).
        """
        shim = Path(pretrained_model_name_or_path) / f"{_SHIM_MODULE}.py"
        if shim.is_file() and not kwargs.get("trust_remote_code"):
            if shim.read_text() != _SHIM:
                raise ValueError(
                    f"{shim} is not the file QLDMPipeline.save_pretrained writes; inspect it, then pass "
                    "trust_remote_code=True to run it"
                )
            kwargs["trust_remote_code"] = True  # the file only imports this class
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ----------------------------------------------------------------------------------------------- sampling
    def encode_prompt(
        self,
        prompts: list[str],
        num_images_per_prompt: int,
        guided: bool,
        negative_prompts: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text tokens for the U-Net: ``(hidden (n, L, D), mask (n, L))``.

        ``n = B`` unguided, or ``2B`` guided (the ``B`` unconditional rows first, then the prompts), with
        ``B = len(prompts) * num_images_per_prompt``. The unconditional rows are the empty caption (the training
        embedding) unless ``negative_prompts`` (one per prompt) replace it.
        """
        hidden, mask = self.text_encoder.encode(prompts)  # (P, L, D), (P, L)
        hidden = hidden.repeat_interleave(num_images_per_prompt, dim=0)  # (B, L, D)
        mask = mask.repeat_interleave(num_images_per_prompt, dim=0)  # (B, L)
        if not guided:
            return hidden, mask
        if negative_prompts is None:
            neg_hidden, neg_mask = self.text_encoder.empty(hidden.shape[0])  # (B, L, D), (B, L)
        else:
            neg_hidden, neg_mask = self.text_encoder.encode(negative_prompts)  # (P, L, D), (P, L)
            neg_hidden = neg_hidden.repeat_interleave(num_images_per_prompt, dim=0)  # (B, L, D)
            neg_mask = neg_mask.repeat_interleave(num_images_per_prompt, dim=0)  # (B, L)
        return torch.cat([neg_hidden, hidden]), torch.cat([neg_mask, mask])  # (2B, L, D), (2B, L)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        *,
        negative_prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 4.0,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: StepEndCallback | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        on_step_begin: Callable[[int, int], None] | None = None,
    ) -> ImagePipelineOutput | tuple[Any]:
        """Generate images.

        Args:
            prompt: One prompt or a list.
            negative_prompt: One for all prompts or one per prompt; replaces the empty caption in the unconditional
                branch of guidance (unused when ``guidance_scale == 1``). Training only saw the empty caption there.
            height, width: Image size in pixels; default the trained size. Any multiple of the model's total
                downsampling works; other sizes than the trained one are outside what the model learned.
            num_inference_steps: Sampler steps.
            guidance_scale: CFG weight w in ``eps_u + w (eps_c - eps_u)``; 1 disables guidance (one U-Net pass).
            num_images_per_prompt: Images per prompt; the output holds them prompt by prompt.
            generator: Source of the initial noise (and of DDPM's per-step noise); a list gives one per image.
            latents: Initial noise ``(B, c, height / f, width / f)`` instead of drawing it (f: the VAE's factor).
            output_type: ``"pil"`` (list of images), ``"np"`` ``(B, H, W, C)`` or ``"pt"`` ``(B, C, H, W)``, in [0, 1];
                ``"latent"`` returns the final scaled latents.
            return_dict: False returns the tuple ``(images,)``.
            callback_on_step_end: Called as ``callback(pipe, step_index, timestep, tensors)`` after each step, where
                ``tensors`` holds the names in ``callback_on_step_end_tensor_inputs``; the ``latents``,
                ``prompt_embeds`` or ``negative_prompt_embeds`` it returns replace the current ones. Setting
                ``pipe._interrupt = True`` skips the remaining steps.
            callback_on_step_end_tensor_inputs: Default ``["latents"]``.
            on_step_begin: Called as ``on_step_begin(step_index, timestep)`` before each denoising step (e.g. to switch
                some blocks to a hardware executor for chosen steps).

        Returns:
            ``ImagePipelineOutput(images=...)`` with ``len(prompts) * num_images_per_prompt`` images.

        Raises:
            ValueError: On empty prompts, a negative-prompt count other than 1 or the prompt count, a size that is not a
                multiple of the downsampling (naming the trained size), non-positive steps or counts, a generator list
                or ``latents`` of the wrong size, unknown callback tensors, an unknown output type or guidance < 0.
        """
        prompts = _as_list(prompt, "prompt")
        negatives = None if negative_prompt is None else _as_list(negative_prompt, "negative_prompt")
        if negatives is not None and len(negatives) == 1:
            negatives = negatives * len(prompts)
        if negatives is not None and len(negatives) != len(prompts):
            raise ValueError(f"got {len(negatives)} negative prompts for {len(prompts)} prompts; give 1 or one each")
        if num_inference_steps < 1 or num_images_per_prompt < 1:
            raise ValueError("num_inference_steps and num_images_per_prompt must be >= 1")
        if not math.isfinite(guidance_scale) or guidance_scale < 0:  # below 0 steers away from the prompt
            raise ValueError(f"guidance_scale must be a finite number >= 0 (1 = off), got {guidance_scale}")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type={output_type!r} is not one of 'pil', 'np', 'pt', 'latent'")
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        tensor_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        unknown = sorted(set(tensor_inputs) - set(self._callback_tensor_inputs))
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs {unknown} not among {self._callback_tensor_inputs}")
        shape = self._latent_shape(len(prompts) * num_images_per_prompt, height, width)
        if isinstance(generator, list) and len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for {shape[0]} images; give one or one per image")
        if latents is not None and tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        modules = (self.unet, self.vae, self.text_encoder)
        was_training = [m.training for m in modules]
        for m in modules:
            m.eval()  # no dropout at inference (the original left attention dropout on)
        self._guidance_scale, self._interrupt = float(guidance_scale), False
        try:
            guided = guidance_scale != 1.0
            hidden, mask = self.encode_prompt(prompts, num_images_per_prompt, guided, negatives)  # (n, L, D), (n, L)
            noise = latents if latents is not None else self._initial_noise(shape, generator)  # (B, c, h, w)
            final = self._denoise(
                noise, hidden.to(self.unet.dtype), mask, num_inference_steps, generator,
                callback_on_step_end, tensor_inputs, on_step_begin,
            )  # fmt: skip
            images = final if output_type == "latent" else self._decode(final, output_type)
        finally:
            for m, mode in zip(modules, was_training):
                m.train(mode)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def _latent_shape(self, batch: int, height: int | None, width: int | None) -> tuple[int, int, int, int]:
        """``(B, c, h, w)`` of the latents for images of ``height x width`` pixels (default the trained size)."""
        height = self.trained_size if height is None else height
        width = self.trained_size if width is None else width
        factor = self.vae_scale_factor * 2 ** (len(self.unet.model_config.unet_block_channels) - 1)
        if height < 1 or width < 1 or height % factor or width % factor:
            raise ValueError(
                f"height={height}, width={width}: must be positive multiples of {factor} (the VAE and U-Net "
                f"downsampling); this model was trained at {self.trained_size}x{self.trained_size}"
            )
        c = self.unet.model_config.latent_channels
        return (batch, c, height // self.vae_scale_factor, width // self.vae_scale_factor)

    def _initial_noise(
        self, shape: tuple[int, ...], generator: torch.Generator | list[torch.Generator] | None
    ) -> torch.Tensor:
        """N(0, I) latents ``shape`` in float32 on the generator's device (the same numbers on CPU and GPU)."""
        if isinstance(generator, list):
            return randn_tensor(shape, generator=generator, device=generator[0].device, dtype=torch.float32)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        return torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32)

    def _denoise(
        self,
        noise: torch.Tensor,
        hidden: torch.Tensor,
        mask: torch.Tensor,
        steps: int,
        generator: torch.Generator | list[torch.Generator] | None,
        callback_on_step_end: StepEndCallback | PipelineCallback | MultiPipelineCallbacks | None,
        tensor_inputs: list[str],
        on_step_begin: Callable[[int, int], None] | None,
    ) -> torch.Tensor:
        """The sampler loop from ``noise (B, c, h, w)`` to the final latents ``(B, c, h, w)``."""
        device, dtype = self.unet.device, self.unet.dtype
        guided = hidden.shape[0] == 2 * noise.shape[0]
        latents = noise.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma  # (B, c, h, w)
        self.scheduler.set_timesteps(steps, device=device)
        self._num_timesteps = len(self.scheduler.timesteps)
        step_kwargs = (
            {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        )
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            if self.interrupt:
                continue
            if on_step_begin is not None:
                on_step_begin(i, int(t))
            model_in = torch.cat([latents, latents]) if guided else latents  # (n, c, h, w)
            model_in = self.scheduler.scale_model_input(model_in, t)
            pred = self.unet(model_in, t, hidden, mask)  # (n, c, h, w)  eps or v
            if guided:
                pred_uncond, pred_cond = pred.chunk(2)  # (B, c, h, w) each
                pred = pred_uncond + self.guidance_scale * (pred_cond - pred_uncond)
            latents = self.scheduler.step(pred, t, latents, **step_kwargs).prev_sample  # (B, c, h, w)
            if callback_on_step_end is not None:
                b = latents.shape[0]
                current = {"latents": latents, "prompt_embeds": hidden[-b:], "negative_prompt_embeds": hidden[:-b]}
                out = callback_on_step_end(self, i, t, {k: current[k] for k in tensor_inputs}) or {}
                latents = out.get("latents", latents)
                if "prompt_embeds" in out or "negative_prompt_embeds" in out:
                    cond = out.get("prompt_embeds", hidden[-b:])
                    hidden = torch.cat([out.get("negative_prompt_embeds", hidden[:-b]), cond]) if guided else cond
        return latents

    def _decode(self, latents: torch.Tensor, output_type: str) -> Any:
        """Scaled latents ``(B, c, h, w)`` -> images in ``output_type``."""
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
