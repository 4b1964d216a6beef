"""Named colour palettes shared by the procedural faces, the pixel captioner and the hair-colour judge.

All palettes are immutable (tuples of names, ``MappingProxyType`` name -> sRGB). One vocabulary for all three means
"blue hair" in a prompt names the same thing whether the model was trained on procedural or on real faces.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

__all__ = [
    "HAIR_COLORS",
    "HAIR_PALETTE",
    "HAIR_STYLES",
    "STYLE_PHRASES",
    "EYE_COLORS",
    "EYE_PALETTE",
    "SKIN_TONES",
    "SKIN_PALETTE",
    "BACKGROUND_COLORS",
    "BACKGROUND_PALETTE",
    "srgb_to_lab",
    "nearest_palette_name",
]

# Hair colours: the tag vocabulary of anime image boards, in the order the captioner and the judge report them. RGB
# values are chosen far apart in CIELAB (smallest pairwise distance > 25) so nearest-colour judging is robust.
HAIR_PALETTE = MappingProxyType(
    {
        "black": (28, 28, 36),
        "brown": (140, 90, 55),
        "blonde": (244, 218, 118),
        "red": (205, 28, 38),
        "orange": (248, 138, 30),
        "pink": (250, 150, 196),
        "purple": (132, 60, 190),
        "blue": (40, 96, 224),
        "green": (50, 170, 70),
        "white": (238, 238, 244),
        "grey": (138, 138, 148),
    }
)
HAIR_COLORS: tuple[str, ...] = tuple(HAIR_PALETTE)

# Hair styles drawn by the procedural generator, and the caption phrase for each (booru tags).
STYLE_PHRASES = MappingProxyType(
    {"short": "short hair", "long": "long hair", "twintails": "twintails", "bob": "bob cut"}
)
HAIR_STYLES: tuple[str, ...] = tuple(STYLE_PHRASES)

EYE_PALETTE = MappingProxyType(
    {
        "blue": (40, 110, 230),
        "green": (30, 160, 70),
        "red": (210, 30, 40),
        "brown": (120, 70, 30),
        "purple": (140, 60, 200),
        "yellow": (235, 190, 30),
    }
)
EYE_COLORS: tuple[str, ...] = tuple(EYE_PALETTE)

SKIN_PALETTE = MappingProxyType({"fair": (255, 228, 206), "light": (246, 208, 178), "tan": (214, 162, 120)})
SKIN_TONES: tuple[str, ...] = tuple(SKIN_PALETTE)

BACKGROUND_PALETTE = MappingProxyType(
    {
        "white": (250, 250, 250),
        "sky": (170, 210, 245),
        "mint": (180, 235, 200),
        "peach": (250, 210, 180),
        "lavender": (215, 200, 245),
        "dark": (45, 45, 60),
    }
)
BACKGROUND_COLORS: tuple[str, ...] = tuple(BACKGROUND_PALETTE)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB in [0, 1] to CIELAB (D65).

    Args:
        rgb: Array ``(..., 3)`` with values in [0, 1].

    Returns:
        Array ``(..., 3)``: L in [0, 100], a and b roughly in [-128, 127].
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ to_xyz.T / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def nearest_palette_name(rgb: np.ndarray, palette: MappingProxyType | dict) -> list[str]:
    """Name the nearest palette colour (Euclidean distance in CIELAB) of each colour.

    Args:
        rgb: Array ``(N, 3)`` of sRGB colours in [0, 1].
        palette: Mapping name -> (r, g, b) in 0..255.

    Returns:
        N names.

    Raises:
        ValueError: If ``rgb`` is not ``(N, 3)``.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 2 or rgb.shape[1] != 3:
        raise ValueError(f"expected colours of shape (N, 3), got {rgb.shape}")
    names = list(palette)
    refs = srgb_to_lab(np.array([palette[n] for n in names], dtype=np.float64) / 255.0)  # (K, 3)
    dist = np.linalg.norm(srgb_to_lab(rgb)[:, None, :] - refs[None], axis=-1)  # (N, K)
    return [names[k] for k in dist.argmin(axis=1)]
