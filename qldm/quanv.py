"""A quanvolution layer: k x k patches of a feature map through an n-qubit circuit, added back as a residual.

QCU-Net (arXiv:2512.20448) puts a quanvolution filter early in the U-Net encoder. Here it sits right after the U-Net's
``conv_in``, on the first encoder level:

    h + post(Q(atan(pre(h))))

``pre`` is a k x k convolution with stride k (one n-vector per patch), Q runs once per patch, and ``post`` is the
transposed convolution that paints each patch's n outputs back onto its k x k pixels in every channel. The core is a
:class:`~qldm.qffn.CircuitSlot` core, so the classical and no-circuit twins and the inference ablations (which act over
the patches of each image) work here exactly as in the Q-FFN.
"""

from __future__ import annotations

import torch
from torch import nn

from qldm.qffn import CircuitSlot, QFFNConfig
from qldm.quantum.executor import Executor

__all__ = ["Quanvolution", "QuanvConvIn"]


class Quanvolution(CircuitSlot):
    """Residual quanvolution: ``h + post(Q(atan(pre(h))))`` over non-overlapping k x k patches.

    Args:
        channels: Channels C of the feature map.
        config: The circuit (``n_qubits`` features per patch) and which core fills it (``branch``).
        patch: Patch side k; the map's height and width must be multiples of k.
        executor: Runs the circuit; None builds the one ``config`` names.

    Raises:
        ValueError: On an invalid config or patch size.
    """

    def __init__(self, channels: int, *, config: QFFNConfig, patch: int, executor: Executor | None = None) -> None:
        super().__init__()
        if patch < 1:
            raise ValueError(f"quanvolution patch size must be >= 1, got {patch}")
        n = config.n_qubits
        self.patch = patch
        self.pre = nn.Conv2d(channels, n, kernel_size=patch, stride=patch)
        self._init_core(config, executor)
        self.post = nn.ConvTranspose2d(n, channels, kernel_size=patch, stride=patch)
        self.register_buffer("gate", None)  # a residual layer: no lambda

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h (B, C, H, W) -> (B, C, H, W)``.

        Raises:
            ValueError: If H or W is not a multiple of the patch size.
        """
        b, _, height, width = h.shape
        z = self.features(h)  # (B, P, n)   one token per patch, P = HW / k^2
        q = self._q(z)  # (B, P, n)   <Z_i> per patch
        q = q.transpose(1, 2).reshape(b, -1, height // self.patch, width // self.patch)  # (B, n, H/k, W/k)
        return h + self.post(q)  # (B, C, H, W)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """``h (B, C, H, W) -> (B, P, n)``: the patches' features, one token per patch.

        Raises:
            ValueError: If H or W is not a multiple of the patch size.
        """
        height, width = h.shape[-2:]
        if height % self.patch or width % self.patch:
            raise ValueError(f"feature map {height}x{width} is not divisible into {self.patch}x{self.patch} patches")
        return self.pre(h).flatten(2).transpose(1, 2)  # (B, n, H/k, W/k) -> (B, P, n)


class QuanvConvIn(nn.Module):
    """The U-Net's ``conv_in`` followed by a :class:`Quanvolution` (keeps ``conv``'s weights under ``conv.``)."""

    def __init__(self, conv: nn.Module, quanv: Quanvolution) -> None:
        super().__init__()
        self.conv, self.quanv = conv, quanv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quanv(self.conv(x))  # (B, c_lat, h, w) -> (B, C, h, w)
