"""Image folders: the Hugging Face imagefolder convention and the Kaggle Anime Face layout.

- imagefolder: ``root/metadata.jsonl``, one JSON object a line with ``file_name`` (relative to root) and ``text``; other
  keys (``year``, ...) become the item's ``attributes``.
- Kaggle: image files (``.jpg``, ``.jpeg``, ``.png``, ``.webp``, ``.bmp``) anywhere under root, each with an
  optional same-stem ``.txt`` caption.

Every image is decoded once at construction, converted to 8-bit RGB (:func:`to_rgb`: 16-bit and float images are
scaled, not clipped; transparency is composited on white), centre-cropped to a square, resized (bicubic) and kept
as uint8, so a bad file is found up front: an undecodable file, a broken symlink or a symlink loop is skipped with a
:class:`CorruptImageWarning`, listed with its reason in ``dataset.skip_reasons`` (a training run writes them to
``skipped_files.tsv``), and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "ImageFolderDataset",
    "CorruptImageWarning",
    "IMAGE_EXTENSIONS",
    "center_crop_resize",
    "to_rgb",
    "default_anime_faces_path",
    "HOLDOUT_SIZE",
    "SPLITS",
    "holdout_names",
    "list_image_names",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
ANIME_FACES_ENV = "QLDM_ANIME_FACES"
HOLDOUT_SIZE = 1000  # held-out real faces: never trained on, the reference set of every evaluation
SPLITS: tuple[str, ...] = ("train", "holdout", "all")

Captioner = Callable[[Image.Image], tuple[str, dict[str, Any]]]


class CorruptImageWarning(UserWarning):
    """An image file could not be decoded and was skipped."""


def default_anime_faces_path() -> Path:
    """Where the shared real faces live: ``$QLDM_ANIME_FACES``, else ``<repo>/../shared/data/anime-faces-64``.

    Returns:
        The path (it may not exist; callers check).
    """
    env = os.environ.get(ANIME_FACES_ENV)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "anime-faces-64"


def center_crop_resize(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square on the short side, then resize to ``size x size`` (bicubic)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, whatever mode Pillow decoded it in.

    Pillow's own ``convert("RGB")`` clips 16-bit and 32-bit pixels to 255 (a 16-bit grey PNG becomes near white), so
    those are scaled to 0-255 first (float images in [0, 1] are scaled by 255, others clipped); transparent pixels
    are composited on white, as a viewer shows them, instead of showing whatever colour the alpha hid.
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "I" or values.max(initial=0) <= 65535 else float(values.max())
        image = Image.fromarray(np.round(np.clip(values, 0, None) * (255.0 / top)).astype(np.uint8), mode="L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        image = Image.fromarray(np.round(np.clip(values * scale, 0, 255)).astype(np.uint8), mode="L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _symlink_problem(path: Path, root: Path) -> str | None:
    """Why a symlink under ``root`` cannot be an image: a loop or a dangling link; None if it resolves."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return "broken symlink"
    except (OSError, RuntimeError):  # ELOOP, or pathlib's own loop detection
        return "symlink loop"
    if target.is_dir() and (
        target == root.resolve() or target in path.parent.resolve().parents or target == path.parent.resolve()
    ):
        return "symlink loop (links to an enclosing folder; not followed)"
    return None


def _scan(root: Path) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, str]]:
    """The image entries under ``root`` and ``{relative name: reason}`` of links that cannot be read."""
    problems: dict[str, str] = {}
    if (root / "metadata.jsonl").is_file():
        return _list_entries(root), problems
    for path in sorted(p for p in root.rglob("*") if p.is_symlink()):
        why = _symlink_problem(path, root)
        if why is not None and (path.suffix.lower() in IMAGE_EXTENSIONS or why.startswith("symlink loop")):
            problems[path.relative_to(root).as_posix()] = why
    return _list_entries(root), problems


def _list_entries(root: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(relative file name, caption, extra attributes) for every image under root."""
    meta = root / "metadata.jsonl"
    if meta.is_file():
        entries = []
        with meta.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    name = str(row.pop("file_name"))
                except (json.JSONDecodeError, KeyError) as err:
                    raise ValueError(f"{meta}:{line_no}: not a JSON object with 'file_name' ({err})") from err
                text = str(row.pop("text", ""))
                entries.append((name, text, row))
        return entries
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()):
        caption = path.with_suffix(".txt")
        text = caption.read_text(encoding="utf-8").strip() if caption.is_file() else ""
        entries.append((path.relative_to(root).as_posix(), text, {}))
    return entries


def list_image_names(root: str | os.PathLike[str]) -> list[str]:
    """Relative file names of every image listed in ``root`` (metadata order, or sorted for Kaggle layouts).

    Raises:
        ValueError: If ``metadata.jsonl`` is malformed.
    """
    return [name for name, _, _ in _list_entries(Path(root))]


def _name_hash(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def holdout_names(names: list[str] | tuple[str, ...], size: int = HOLDOUT_SIZE) -> frozenset[str]:
    """The held-out split: the ``size`` file names with the smallest SHA-256 of the name.

    It depends on the names alone (not on their order, the image content or any seed), so every run, evaluation
    and machine picks the same files, and adding images to the folder moves a file into the split only if its
    hash is smaller than an existing one's.

    Args:
        names: Every file name of the data set.
        size: How many to hold out (all of them if there are fewer).

    Raises:
        ValueError: If ``size`` is negative.
    """
    if size < 0:
        raise ValueError(f"holdout size must be >= 0, got {size}")
    return frozenset(sorted(set(names), key=_name_hash)[:size])


class ImageFolderDataset(Dataset):
    """Images and captions from a folder, centre-cropped and resized.

    Args:
        root: The folder (imagefolder with ``metadata.jsonl``, or Kaggle-style files with optional ``.txt``).
        image_size: Output side S.
        captioner: Optional callable ``PIL image -> (caption, attributes)``, e.g. :class:`HairColorCaptioner`;
            when given, it replaces the folder's captions and its attributes are merged into each item's.
        limit: Keep at most this many readable images (in file order), for quick runs.
        select: Optional predicate on the relative file name; only files it accepts are read (``limit`` counts
            accepted files). :func:`qldm.data.build_dataset` uses it for the train / holdout split.
        name: Label of this selection in :attr:`dataset_id` (e.g. the split).

    Attributes:
        root: The folder.
        skipped: Relative names of files that could not be read (they are not in the dataset): undecodable files,
            broken symlinks and symlink loops.
        skip_reasons: ``{relative name: reason}`` of every skipped file.
        file_names: Relative names of the images in the dataset, in item order.
        dataset_id: A string that changes whenever the content or order of the items does (the latent cache
            key): the folder, image size, selection name, count and a hash of the file names.

    Items are ``{"pixel_values": float (3, S, S) in [-1, 1], "text": str, "attributes": dict}``.

    Raises:
        ValueError: If root is not a directory, has no images, none of them decodes, or metadata is malformed.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        image_size: int,
        captioner: Captioner | None = None,
        limit: int | None = None,
        select: Callable[[str], bool] | None = None,
        name: str = "all",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"image folder {str(self.root)!r} does not exist or is not a directory")
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {limit}")
        selection = name  # the loop below reuses ``name`` for file names
        entries, bad_links = _scan(self.root)
        if entries and select is not None:
            entries = [e for e in entries if select(e[0])]
            if not entries:
                raise ValueError(f"no image in {str(self.root)!r} passes the selection {name!r}")
        if not entries:
            raise ValueError(
                f"no images found in {str(self.root)!r} (expected metadata.jsonl or files with extensions "
                f"{', '.join(IMAGE_EXTENSIONS)})"
            )
        self.image_size = int(image_size)
        self.skip_reasons: dict[str, str] = {}
        for link, why in bad_links.items():
            self._skip(link, why)
        self.file_names: list[str] = []
        self.texts: list[str] = []
        self.attributes: list[dict[str, Any]] = []
        pixels: list[np.ndarray] = []
        for name, text, extra in entries:
            if limit is not None and len(pixels) >= limit:
                break
            try:
                with Image.open(self.root / name) as im:
                    image = to_rgb(im)  # forces a full decode: truncated files fail here
            # Pillow raises OSError (UnidentifiedImageError) for most broken files, SyntaxError for some PNGs.
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                self._skip(name, f"unreadable: {' '.join(str(err).split())}")
                continue
            attrs = dict(extra)
            if captioner is not None:
                text, tags = captioner(image)
                attrs.update(tags)
            pixels.append(np.asarray(center_crop_resize(image, self.image_size), dtype=np.uint8))
            self.file_names.append(name)
            self.texts.append(text)
            self.attributes.append(attrs)
        if not pixels:
            raise ValueError(f"none of the {len(entries)} images in {str(self.root)!r} could be read")
        if self.skipped:
            warnings.warn(
                f"skipped {len(self.skipped)} unreadable image(s) in {str(self.root)!r}",
                CorruptImageWarning,
                stacklevel=2,
            )
        self.images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, S, S)
        names_hash = hashlib.sha256("\n".join(self.file_names).encode("utf-8")).hexdigest()[:16]
        self.dataset_id = f"{self.root.resolve()}|{self.image_size}|{selection}|{len(self.file_names)}|{names_hash}"

    @property
    def skipped(self) -> list[str]:
        return list(self.skip_reasons)

    def _skip(self, name: str, reason: str) -> None:
        self.skip_reasons[name] = reason
        warnings.warn(f"skipping {name!r} in {str(self.root)!r}: {reason}", CorruptImageWarning, stacklevel=3)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        pixels = self.images[index].float() / 127.5 - 1.0  # (3, S, S) in [-1, 1]
        return {"pixel_values": pixels, "text": self.texts[index], "attributes": dict(self.attributes[index])}
