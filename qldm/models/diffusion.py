"""The diffusion process: diffusers schedulers, the training loss, and per-sample caption dropout.

Training uses the DDPM forward process (Ho et al. 2020) with uniform timesteps. The network predicts either
the noise (epsilon) or the velocity ``v = sqrt(a) * eps - sqrt(1 - a) * x0`` (Salimans & Ho 2022), chosen in
the config; the sampling schedulers are told the same ``prediction_type`` so they invert what was trained.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import nn

from qldm.models.config import ModelConfig

__all__ = ["make_train_scheduler", "make_sample_scheduler", "diffusion_loss", "drop_captions", "SAMPLERS"]

SAMPLERS = ("ddim", "dpm++", "ddpm")


def _process(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": cfg.num_train_timesteps,
        "beta_schedule": cfg.beta_schedule,
        "beta_start": cfg.beta_start,
        "beta_end": cfg.beta_end,
        "prediction_type": cfg.prediction_type,
    }


def make_train_scheduler(cfg: ModelConfig) -> DDPMScheduler:
    """The DDPM process the model is trained on (``add_noise``/``get_velocity``); latents are never clipped."""
    return DDPMScheduler(**_process(cfg), clip_sample=False)


def make_sample_scheduler(name: str, cfg: ModelConfig) -> SchedulerMixin:
    """A sampler for the trained process: ``"ddim"`` (Song et al. 2021), ``"dpm++"`` (2nd-order multistep
    DPM-Solver++, Lu et al. 2022) or ``"ddpm"`` (ancestral, as the original, 1000 steps).

    Timesteps are spaced ``"trailing"`` so the first step is t = T - 1, where the sampler's N(0, I) start matches
    training (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed").

    Raises:
        ValueError: On an unknown sampler name.
    """
    process = _process(cfg)
    if name == "ddim":
        return DDIMScheduler(**process, clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")
    if name == "dpm++":
        return DPMSolverMultistepScheduler(
            **process, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing"
        )
    if name == "ddpm":
        return DDPMScheduler(**process, clip_sample=False, timestep_spacing="trailing")
    raise ValueError(f"unknown sampler {name!r}; choose one of {list(SAMPLERS)}")


def diffusion_loss(
    unet: nn.Module,
    latents: torch.Tensor,
    hidden: torch.Tensor,
    mask: torch.Tensor | None,
    scheduler: DDPMScheduler,
    cfg: ModelConfig,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared error of the denoiser at uniformly drawn timesteps.

    Args:
        unet: ``(noisy (B, C, h, w), t (B,), hidden, mask) -> (B, C, h, w)`` (a ``QLDMUNet``).
        latents: Clean scaled latents ``(B, C, h, w)``.
        hidden, mask: Text tokens ``(B, L, D)`` and their mask ``(B, L)`` (after caption dropout).
        scheduler: The training scheduler (its ``prediction_type`` must equal ``cfg.prediction_type``).
        generator: Source of t and noise (a CPU generator works for any device).

    Returns:
        Scalar loss (float32).

    Raises:
        ValueError: If the scheduler was made for another prediction type.
    """
    if scheduler.config.prediction_type != cfg.prediction_type:
        raise ValueError(
            f"scheduler predicts {scheduler.config.prediction_type!r} but the config says {cfg.prediction_type!r}"
        )
    b, device = latents.shape[0], latents.device
    gen_device = generator.device if generator is not None else device
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator, device=gen_device)
    t = t.to(device)  # (B,)
    noise = torch.randn(latents.shape, generator=generator, device=gen_device, dtype=latents.dtype).to(device)
    noisy = scheduler.add_noise(latents, noise, t)  # (B, C, h, w)  sqrt(a_t) x0 + sqrt(1 - a_t) eps
    target = noise if cfg.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, t)
    pred = unet(noisy, t, hidden, mask)  # (B, C, h, w)
    return F.mse_loss(pred.float(), target.float())


def drop_captions(
    hidden: torch.Tensor,
    mask: torch.Tensor,
    empty_hidden: torch.Tensor,
    empty_mask: torch.Tensor,
    p: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each sample's caption by the empty one with probability ``p``, independently per sample.

    The original dropped the captions of a whole batch at once, so a batch was either all conditional or all
    unconditional; per-sample dropout gives every batch both kinds of examples (Ho & Salimans 2022).

    Args:
        hidden, mask: ``(B, L, D)`` and ``(B, L)``.
        empty_hidden, empty_mask: ``TextEncoder.empty(B)`` (or batch 1, broadcast).
        p: Drop probability in [0, 1].

    Returns:
        ``(hidden (B, L, D), mask (B, L))``.

    Raises:
        ValueError: If ``p`` is outside [0, 1] or the shapes disagree.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"caption dropout p must lie in [0, 1], got {p}")
    if empty_hidden.shape[1:] != hidden.shape[1:] or empty_mask.shape[-1] != mask.shape[-1]:
        raise ValueError(f"empty caption {tuple(empty_hidden.shape)} does not match the captions {tuple(hidden.shape)}")
    b = hidden.shape[0]
    gen_device = generator.device if generator is not None else hidden.device
    drop = (torch.rand(b, generator=generator, device=gen_device) < p).to(hidden.device)  # (B,)
    hidden = torch.where(drop[:, None, None], empty_hidden.to(hidden.dtype), hidden)  # (B, L, D)
    mask = torch.where(drop[:, None], empty_mask.to(mask.dtype), mask)  # (B, L)
    return hidden, mask
