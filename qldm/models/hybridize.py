"""Make any diffusers ``UNet2DConditionModel`` hybrid: Q-FFN layers in the transformer blocks you choose.

A researcher's own U-Net, or a pretrained one (e.g. Stable Diffusion's), gets a parallel quantum branch in the
feed-forward layer of chosen ``BasicTransformerBlock`` modules: the block's FFN ``f`` becomes
``f(x) + lambda * post(Q(pre(x)))`` (a :class:`~qldm.qffn.QuantumFeedForward`). By default the block's own FFN, with its
pretrained weights, is kept as the classical part, so ``gate_init=0`` reproduces the original model exactly until the
gate is trained.

The result is still a ``UNet2DConditionModel``: save its ``state_dict`` and, to load it, hybridize a fresh U-Net with
the same arguments and call ``load_state_dict`` (``UNet2DConditionModel.from_pretrained`` knows nothing of the
Q-FFNs). ``QLDMUNet`` stores its Q-FFN settings in its own config instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from diffusers.models.attention import BasicTransformerBlock
from torch import nn

from qldm.models.blocks import select_blocks
from qldm.qffn import CircuitSlot, QFFNConfig, QuantumFeedForward
from qldm.quantum.executor import Executor

__all__ = ["hybridize_unet", "make_qffn", "transformer_block_names", "parameter_groups", "select_blocks"]


def transformer_block_names(unet: nn.Module) -> list[str]:
    """Names of every ``BasicTransformerBlock`` in ``unet`` (e.g. ``mid_block.attentions.0.transformer_blocks.0``)."""
    return [name for name, m in unet.named_modules() if isinstance(m, BasicTransformerBlock)]


def make_qffn(
    block: BasicTransformerBlock,
    *,
    qffn: QFFNConfig,
    ff_mult: int,
    executor: Executor | None,
    keep_ffn: bool,
) -> QuantumFeedForward:
    """The Q-FFN for one transformer block (the one builder ``QLDMUNet`` and :func:`hybridize_unet` share).

    Args:
        block: The block whose ``ff`` it replaces (its width, device and dtype are read).
        qffn: The Q-FFN settings.
        ff_mult: Hidden width of ``post`` (and of a fresh classical FFN) as a multiple of the token width.
        executor: Runs the circuit (shared by all blocks); None builds the one ``qffn`` names.
        keep_ffn: Keep the block's own FFN (and its weights) as the classical part of a ``parallel`` Q-FFN.
    """
    d = block.norm3.normalized_shape[0] if block.norm3 is not None else block.norm1.normalized_shape[0]
    old = block.ff
    ref = next(old.parameters(), None)
    new = QuantumFeedForward(d, config=qffn, executor=executor, ff_mult=ff_mult)
    if keep_ffn and new.ffn is not None:
        new.ffn = old  # diffusers' FeedForward (GELU/GEGLU) with its weights; same (B, L, d) -> (B, L, d)
    if ref is not None:
        new.to(device=ref.device, dtype=ref.dtype)
        new.quantum.float()  # circuit weights stay fp32 (the layer casts its inputs), as in QLDMUNet
    return new


def hybridize_unet(
    unet: nn.Module,
    *,
    qffn: QFFNConfig | None = None,
    blocks: str | Sequence[str] = "bottleneck",
    ff_mult: int = 4,
    keep_ffn: bool = True,
    executor: Executor | None = None,
) -> list[str]:
    """Put Q-FFN layers into an existing U-Net, in place.

    Args:
        unet: A ``UNet2DConditionModel`` (any module holding diffusers ``BasicTransformerBlock`` modules works).
        qffn: The Q-FFN settings (circuit, executor, gate); None = ``QFFNConfig()``. ``gate_init=0`` leaves the
            model's output unchanged at first.
        blocks: ``"bottleneck"`` (the mid block's transformers), ``"all"``, or names or name prefixes from
            :func:`transformer_block_names` (a list or a comma-separated string), e.g. ``["mid_block", "up_blocks.1"]``.
        ff_mult: Hidden width of ``post`` (and of a new classical FFN) as a multiple of the token width.
        keep_ffn: True keeps each block's own FFN (and its trained weights) as the classical part; False replaces it
            by a fresh ``Linear -> GELU -> Linear`` of width ``ff_mult * d``, as ``QLDMUNet`` builds. In
            ``qffn.mode="quantum-only"`` the block's FFN is dropped either way.
        executor: Runs every inserted circuit (one shared instance); None builds the one ``qffn`` names.

    Returns:
        Names of the new Q-FFN modules (``<block>.ff``), for e.g. ``parameter_groups`` or executor swaps.

    Raises:
        ValueError: On an invalid ``qffn``, unknown block names, a chosen block that already has a Q-FFN, or a
            module without transformer blocks.
    """
    qffn = qffn or QFFNConfig()
    qffn.validate(check_executor=qffn.uses_circuit)
    if ff_mult < 1:
        raise ValueError(f"ff_mult must be >= 1, got {ff_mult}")
    names = transformer_block_names(unet)
    if not names:
        raise ValueError(f"{type(unet).__name__} has no diffusers BasicTransformerBlock to hybridize")
    chosen = select_blocks(names, blocks)
    if not chosen:
        raise ValueError(f"blocks={blocks!r} selects no transformer block")
    modules = dict(unet.named_modules())
    already = [n for n in chosen if isinstance(modules[n].ff, QuantumFeedForward)]
    if already:
        raise ValueError(f"blocks {already} already have a Q-FFN")
    if executor is None and qffn.uses_circuit:
        executor = qffn.make_executor()  # one instance shared by all blocks, as in QLDMUNet
    for name in chosen:
        block: BasicTransformerBlock = modules[name]
        block.ff = make_qffn(block, qffn=qffn, ff_mult=ff_mult, executor=executor, keep_ffn=keep_ffn)
    return [f"{name}.ff" for name in chosen]


def parameter_groups(module: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Optimizer groups of a hybrid model: ``quantum`` (circuit weights, pre, post), ``gate`` (the lambdas),
    ``classical`` (everything else, including the Q-FFNs' classical FFNs).

    Every parameter appears in exactly one group (the original trained them at 5e-4, 1e-6 and 1e-4).
    """
    quantum: list[nn.Parameter] = []
    gate: list[nn.Parameter] = []
    for m in module.modules():
        if not isinstance(m, CircuitSlot):
            continue
        for part in (m.pre, m.quantum, m.post):
            quantum.extend(part.parameters())
        if isinstance(getattr(m, "gate", None), nn.Parameter):
            gate.append(m.gate)
    taken = {id(p) for p in quantum + gate}
    classical = [p for p in module.parameters() if id(p) not in taken]
    return {"classical": classical, "quantum": quantum, "gate": gate}
