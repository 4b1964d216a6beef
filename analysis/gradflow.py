"""Gradient flow through the Q-FFN blocks: per block and step, grad norms of the circuit weights, lambda and the
classical FFN, plus lambda's trajectory; flags a quantum branch whose gradients vanish or whose lambda collapses.

:func:`tiny_model` and :func:`train_steps` give a small ``QLDMUNet`` trained on the spot on synthetic latents, for when
no training run's checkpoint is at hand (the numbers then describe that tiny setting, not the full model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["GradFlowRecorder", "tiny_model", "train_steps", "synthetic_latents"]


@dataclass
class GradFlowRecorder:
    """Call :meth:`record` after each ``backward()`` (before ``zero_grad``).

    Attributes:
        rows: One dict per (step, block): ``step, block, quantum, gate, classical, pre_post, lam``.
    """

    model: torch.nn.Module
    rows: list[dict] = field(default_factory=list)

    @staticmethod
    def _norm(params) -> float:
        gs = [p.grad.detach().float().norm() for p in params if p.grad is not None]
        return float(torch.stack(gs).norm()) if gs else 0.0

    def record(self, step: int) -> None:
        for name, m in self.model.quantum_modules():
            gate = m.gate if isinstance(m.gate, torch.nn.Parameter) else None
            self.rows.append(
                {
                    "step": step,
                    "block": name,
                    "quantum": self._norm(m.quantum.parameters()),
                    "pre_post": self._norm(list(m.pre.parameters()) + list(m.post.parameters())),
                    "gate": self._norm([gate]) if gate is not None else 0.0,
                    "classical": self._norm(m.ffn.parameters()) if getattr(m, "ffn", None) is not None else 0.0,
                    "lam": 1.0 if m.gate is None else float(m.gate.detach()),  # no lambda: the branch enters whole
                }
            )

    def flags(self, *, vanish_ratio: float = 1e-3, lam_floor: float = 1e-3) -> list[str]:
        """Warnings: a block whose median quantum grad norm is below ``vanish_ratio`` x its classical one, or whose
        final |lambda| is below ``lam_floor`` (the branch then contributes nothing)."""
        out = []
        for block in dict.fromkeys(r["block"] for r in self.rows):
            rs = [r for r in self.rows if r["block"] == block]
            q, c = np.median([r["quantum"] for r in rs]), np.median([r["classical"] for r in rs])
            if q < vanish_ratio * max(c, 1e-30):
                out.append(f"{block}: quantum gradients vanish (median {q:.2e} vs classical {c:.2e})")
            if abs(rs[-1]["lam"]) < lam_floor:
                out.append(f"{block}: lambda collapsed to {rs[-1]['lam']:.2e}")
        return out

    def plot(self, path=None):
        """Grad norms (log) per block and component against step, and lambda against step."""
        import matplotlib.pyplot as plt  # pyplot, so a notebook shows the figure inline

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for i, block in enumerate(dict.fromkeys(r["block"] for r in self.rows)):
            rs = [r for r in self.rows if r["block"] == block]
            steps = [r["step"] for r in rs]
            for comp, style in (("quantum", "-"), ("classical", "--"), ("gate", ":")):
                ax1.semilogy(steps, [max(r[comp], 1e-30) for r in rs], style, color=f"C{i}", label=f"{comp} b{i}")
            ax2.plot(steps, [r["lam"] for r in rs], color=f"C{i}", label=block[-30:])
        ax1.set_xlabel("step")
        ax1.set_title("grad norms (- quantum, -- classical FFN, : lambda)", fontsize=9)
        ax2.set_xlabel("step")
        ax2.set_title("lambda", fontsize=9)
        ax2.legend(fontsize=6)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def tiny_model(*, n_qubits: int = 3, seed: int = 0, quantum_blocks: str = "all"):
    """A small ``QLDMUNet`` (8x8 latents, two levels, Q-FFN in ``quantum_blocks``) with its
    ``ModelConfig``."""
    from qldm.models.config import ModelConfig, QFFNConfig
    from qldm.models.unet import QLDMUNet

    torch.manual_seed(seed)
    cfg = ModelConfig(
        unet_block_channels=(16, 32),
        attention_head_dim=8,
        attention_levels=(0, 1),
        text_dim=16,
        quantum_blocks=quantum_blocks,
        qffn=QFFNConfig(n_qubits=n_qubits),
    )
    model = QLDMUNet(model=cfg.to_dict(), sample_size=8)
    return model, cfg


def synthetic_latents(batch: int, *, size: int = 8, channels: int = 4, seed: int = 0) -> torch.Tensor:
    """Structured stand-in latents ``(batch, C, size, size)``: random low- plus high-frequency gratings."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    freq = torch.randint(1, size // 2 + 1, (batch, channels, 2), generator=g).float()
    phase = torch.rand(batch, channels, 1, 1, generator=g) * 6.28
    return torch.sin(2 * np.pi * (freq[..., :1, None] * xx + freq[..., 1:, None] * yy) / size + phase)


def train_steps(model, cfg, *, steps: int = 10, batch: int = 4, lr: float = 1e-3, seed: int = 0) -> GradFlowRecorder:
    """Train ``model`` for ``steps`` AdamW steps on :func:`synthetic_latents`, recording the gradient flow.

    The three groups of ``model.parameter_groups()`` share ``lr`` here (so lambda visibly moves); the original's 1e-6
    lambda rate would freeze it.

    Returns:
        The recorder, with ``rows[...]["loss"]`` added per step on the first block's row.
    """
    from qldm.models.diffusion import diffusion_loss, make_train_scheduler

    sched = make_train_scheduler(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rec = GradFlowRecorder(model)
    gen = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, 4, model.model_config.cross_attention_dim, generator=gen)
    model.train()
    for step in range(steps):
        latents = synthetic_latents(batch, size=model.config.sample_size, seed=seed + step)
        loss = diffusion_loss(model, latents, text, None, sched, cfg, generator=gen)
        opt.zero_grad()
        loss.backward()
        rec.record(step)
        rec.rows[-len(model.quantum_modules())]["loss"] = float(loss.detach())
        opt.step()
    return rec
