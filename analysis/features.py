"""Feature maps before and after the quantum branch (the original README's Figure 1).

For a ``QLDMUNet`` and one latent, a forward hook on every Q-FFN catches the tokens that enter it, ``(B, T, d)``
with ``T = h * w`` at the block's resolution; ``QuantumFeedForward.quantum_branch`` then gives the circuit's input
``A = pre(x)`` (``(B, T, n)``) and output ``B = Q(A)``. Each of the n channels is shown as an ``h x w`` image.
:func:`feature_study` is what ``qldm features`` and the notebook run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "BlockFeatures",
    "feature_maps",
    "plot_feature_maps",
    "map_statistics",
    "high_frequency_ratios",
    "load_unet",
    "feature_study",
]


@dataclass(frozen=True)
class BlockFeatures:
    """One Q-FFN block's maps for the first sample.

    Attributes:
        name: Module name inside the model.
        before: ``(n, h, w)`` circuit inputs ``pre(x)`` (feature A).
        after: ``(n, h, w)`` circuit outputs ``<Z_i>`` (feature B).
        gate: The block's lambda.
    """

    name: str
    before: np.ndarray
    after: np.ndarray
    gate: float


def feature_maps(
    model: torch.nn.Module,
    latents: torch.Tensor,
    timestep: int,
    hidden: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> list[BlockFeatures]:
    """Run the model once on ``latents`` and collect every Q-FFN's features.

    Args:
        model: A ``QLDMUNet`` (anything with ``quantum_modules()`` and the U-Net call signature).
        latents: ``(1, C, h, w)`` (noisy) latents.
        timestep: Diffusion step.
        hidden: ``(1, L, D)`` text tokens; ``mask`` ``(1, L)`` or ``None``.

    Returns:
        One :class:`BlockFeatures` per Q-FFN, in module order.

    Raises:
        ValueError: If the model has no quantum modules or a block's token count is not a square.
    """
    mods = model.quantum_modules()
    if not mods:
        raise ValueError("model has no quantum feed-forward modules to inspect")
    caught: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=name: caught.__setitem__(name, args[0].detach()))
        for name, m in mods
    ]
    try:
        with torch.no_grad():
            model(latents, torch.tensor([timestep]), hidden, mask)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for name, m in mods:
        x = caught[name][:1]  # (1, T, d) tokens, or (1, C, H, W) for a quanvolution
        with torch.no_grad():
            a, b = m.quantum_branch(x)  # (1, T, n) each
        side = int(math.isqrt(a.shape[1]))
        if side * side != a.shape[1]:
            raise ValueError(f"{name}: {a.shape[1]} tokens do not form a square map")
        before = a[0].T.reshape(-1, side, side).float().numpy()  # (n, h, w)
        after = b[0].T.reshape(-1, side, side).float().numpy()  # (n, h, w)
        gate = 1.0 if m.gate is None else float(m.gate.detach())  # a slot without lambda enters with weight 1
        out.append(BlockFeatures(name, before, after, gate))
    return out


def plot_feature_maps(blocks: list[BlockFeatures], path=None):
    """One row pair per block: the n input maps (A) above the n output maps (B)."""
    import matplotlib.pyplot as plt  # pyplot, so a notebook shows the figure inline

    n = max(b.before.shape[0] for b in blocks)
    fig, axes = plt.subplots(2 * len(blocks), n, figsize=(1.6 * n, 1.7 * 2 * len(blocks)), squeeze=False)
    for r, blk in enumerate(blocks):
        for row, (maps, tag) in enumerate(((blk.before, "A=pre(x)"), (blk.after, "B=Q(A)"))):
            for i in range(n):
                ax = axes[2 * r + row, i]
                ax.axis("off")
                if i < maps.shape[0]:
                    ax.imshow(maps[i], cmap="viridis")
                    ax.set_title(f"{tag} ch{i}" + (f"\n{blk.name[-28:]}" if i == 0 and row == 0 else ""), fontsize=6)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def map_statistics(blocks: list[BlockFeatures]) -> list[dict]:
    """Per block: spatial std of each input and output map (does B vary over the image, or is it flat?)."""
    return [
        {
            "name": b.name,
            "gate": b.gate,
            "std_before": np.std(b.before, axis=(1, 2)).tolist(),
            "std_after": np.std(b.after, axis=(1, 2)).tolist(),
        }
        for b in blocks
    ]


def high_frequency_ratios(blocks: list[BlockFeatures], cutoff: float = 0.25) -> list[dict]:
    """Per block: share of spatial energy above ``cutoff`` x Nyquist in the maps before (A) and after (B) the circuit.

    Uses :func:`qldm.eval.spectrum.high_frequency_ratio` with each map as a gray image: a check, at token level, of
    the claim that the quantum branch adds high-frequency texture.
    """
    from qldm.eval.spectrum import high_frequency_ratio

    def ratio(maps: np.ndarray) -> float:
        scale = np.abs(maps).max() or 1.0
        imgs = np.repeat((maps / scale)[:, None], 3, axis=1)  # (n, 3, h, w) in [-1, 1]
        return high_frequency_ratio(imgs, cutoff)

    return [{"name": b.name, "hf_before": ratio(b.before), "hf_after": ratio(b.after)} for b in blocks]


def load_unet(path: str):
    """A ``QLDMUNet`` saved with ``save_pretrained`` (``config.json`` + weights), in eval mode."""
    from qldm.models.unet import QLDMUNet

    return QLDMUNet.from_pretrained(path).eval()


def feature_study(model: torch.nn.Module, *, timestep: int = 500, seed: int = 0) -> tuple[list[BlockFeatures], dict]:
    """Feature maps of every Q-FFN for one structured synthetic latent and random text tokens, with their statistics.

    The latent is :func:`analysis.gradflow.synthetic_latents` at the model's latent size; the text tokens are
    ``N(0, 1)`` of shape ``(1, 4, cross_attention_dim)``, both seeded by ``seed``.

    Args:
        model: A ``QLDMUNet`` in eval mode.
        timestep: Diffusion step the model is called at.
        seed: Seed of the latent and the text tokens.

    Returns:
        ``(blocks, record)``: the :class:`BlockFeatures` and a JSON-ready dict with ``timestep``, ``seed``,
        ``statistics`` (:func:`map_statistics`) and ``high_frequency`` (:func:`high_frequency_ratios`).

    Raises:
        ValueError: If the model has no Q-FFN blocks (see :func:`feature_maps`).
    """
    from analysis.gradflow import synthetic_latents

    torch.manual_seed(seed)
    latent = synthetic_latents(1, size=model.config.sample_size, channels=model.model_config.latent_channels, seed=seed)
    text = torch.randn(1, 4, model.model_config.cross_attention_dim)
    blocks = feature_maps(model, latent, timestep, text)
    record = {
        "timestep": timestep,
        "seed": seed,
        "statistics": map_statistics(blocks),
        "high_frequency": high_frequency_ratios(blocks),
    }
    return blocks, record
