"""One entry point from a configured data source to a torch ``Dataset``, and the batch collate function."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from qldm.data.captioner import HairColorCaptioner
from qldm.data.images import (
    ANIME_FACES_ENV,
    HOLDOUT_SIZE,
    SPLITS,
    ImageFolderDataset,
    default_anime_faces_path,
    holdout_names,
    list_image_names,
)
from qldm.data.procedural import ProceduralFaces

__all__ = ["build_dataset", "collate", "anime_holdout_names", "DEFAULT_PROCEDURAL_SIZE", "SOURCES"]

DEFAULT_PROCEDURAL_SIZE = 2000  # images when source="procedural" and no limit is given
SOURCES: tuple[str, ...] = ("procedural", "anime-faces")
CAPTION_MODES: tuple[str, ...] = ("auto", "hair")


def build_dataset(
    source: str | os.PathLike[str],
    *,
    image_size: int,
    limit: int | None = None,
    seed: int = 0,
    captions: str = "auto",
    exclude_combos: tuple[tuple[str, str], ...] = (),
    split: str = "train",
) -> Dataset:
    """Build the dataset a run trains on.

    Args:
        source: ``"procedural"`` (built-in faces), ``"anime-faces"`` (the shared real faces, captioned by
            :class:`HairColorCaptioner`), or a folder path (imagefolder ``metadata.jsonl`` or Kaggle layout).
        image_size: Side S of the square images.
        limit: Number of images (procedural: default 2000; folders: at most this many, in file order).
        seed: Seed of the procedural faces (folders are read in a fixed order and ignore it).
        captions: For folders: ``"auto"`` uses metadata/``.txt`` captions, ``"hair"`` the pixel captioner.
            ``"anime-faces"`` always uses the captioner, because its own captions are content-free.
        exclude_combos: Procedural only: (hair colour, hair style) pairs never shown in training.
        split: ``"anime-faces"`` only: ``"train"`` (the default, what every run trains on) leaves out the
            :data:`HOLDOUT_SIZE` held-out faces of :func:`anime_holdout_names`; ``"holdout"`` gives exactly those
            (the evaluation reference); ``"all"`` both. Other sources have no held-out split and accept only
            ``"train"``.

    Returns:
        A dataset whose items are ``{"pixel_values": (3, S, S) in [-1, 1], "text": str, "attributes": dict}``.

    Raises:
        ValueError: On an unknown caption mode, a folder that does not exist or holds no images, or ``exclude_combos``
            given for a folder source, or an unknown ``split`` (or one other than ``"train"`` for a source without a
            held-out split).
    """
    if captions not in CAPTION_MODES:
        raise ValueError(f"captions must be one of {CAPTION_MODES}, got {captions!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split != "train" and str(source) != "anime-faces":
        raise ValueError(f"split={split!r}: only source='anime-faces' has a held-out split")
    if str(source) == "procedural":
        return ProceduralFaces(
            limit or DEFAULT_PROCEDURAL_SIZE, image_size=image_size, seed=seed, exclude_combos=exclude_combos
        )
    if exclude_combos:
        raise ValueError("exclude_combos applies only to source='procedural'")
    if str(source) == "anime-faces":
        root = default_anime_faces_path()
        if not root.is_dir():
            raise ValueError(
                f"anime faces folder {str(root)!r} not found; set {ANIME_FACES_ENV} or place the data there"
            )
        held = anime_holdout_names(root)
        select = {"train": lambda n: n not in held, "holdout": held.__contains__, "all": None}[split]
        return ImageFolderDataset(
            root, image_size=image_size, captioner=HairColorCaptioner(), limit=limit, select=select, name=split
        )
    path = Path(source).expanduser()
    if not path.is_dir():
        raise ValueError(f"data source {str(source)!r} is neither one of {SOURCES} nor an existing directory")
    captioner = HairColorCaptioner() if captions == "hair" else None
    return ImageFolderDataset(path, image_size=image_size, captioner=captioner, limit=limit)


def anime_holdout_names(root: str | os.PathLike[str] | None = None) -> frozenset[str]:
    """File names (relative to the folder) of the held-out real faces that training never sees.

    The :data:`HOLDOUT_SIZE` names with the smallest SHA-256 of the name (see :func:`holdout_names`).

    Args:
        root: The anime-faces folder; default :func:`default_anime_faces_path`.

    Raises:
        ValueError: If the folder does not exist.
    """
    root = Path(root) if root is not None else default_anime_faces_path()
    if not root.is_dir():
        raise ValueError(f"anime faces folder {str(root)!r} not found; set {ANIME_FACES_ENV} or place the data there")
    return holdout_names(list_image_names(root), HOLDOUT_SIZE)


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of items into a batch.

    Returns:
        ``{"pixel_values": (B, 3, S, S), "text": list[str] (B), "attributes": list[dict] (B)}``.

    Raises:
        ValueError: On an empty batch or images of different shapes.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    shapes = {tuple(item["pixel_values"].shape) for item in batch}
    if len(shapes) != 1:
        raise ValueError(f"images in a batch must share one shape, got {sorted(shapes)}")
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in batch]),  # (B, 3, S, S)
        "text": [item["text"] for item in batch],
        "attributes": [item["attributes"] for item in batch],
    }
