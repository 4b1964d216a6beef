"""The one block selector: which transformer blocks of a U-Net get a Q-FFN (standard library only)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["select_blocks"]


def select_blocks(names: Sequence[str], blocks: str | Sequence[str]) -> list[str]:
    """The block names ``blocks`` picks, in model order.

    Args:
        names: Every transformer block of the U-Net, in model order.
        blocks: ``"all"``, ``"bottleneck"`` (the mid block), ``"none"``, or block names / name prefixes, as a list or
            one comma-separated string (``"down_blocks.1,mid_block"``).

    Raises:
        ValueError: On an empty selection list, or an entry that matches no block (the message lists the names).
    """
    if blocks == "all":
        return list(names)
    if blocks == "none":
        return []
    if blocks == "bottleneck":
        return [n for n in names if n.startswith("mid_block.")]
    if isinstance(blocks, str):
        blocks = [b.strip() for b in blocks.split(",") if b.strip()]
    if not isinstance(blocks, Sequence) or not blocks:
        raise ValueError(f"blocks must be 'all', 'bottleneck', 'none' or block names, got {blocks!r}")

    def hits(entry: str) -> list[str]:
        entry = entry.rstrip(".")
        return [n for n in names if n == entry or n.startswith(f"{entry}.")]

    unmatched = [entry for entry in blocks if not hits(entry)]
    if unmatched:
        raise ValueError(f"{unmatched} match no transformer block; this U-Net has {list(names)}")
    chosen = {n for entry in blocks for n in hits(entry)}
    return [n for n in names if n in chosen]
