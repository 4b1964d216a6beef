"""Data for QLDM: image folders, the shared real anime faces with a pixel hair-colour captioner, and the
built-in procedural faces with their hair-colour judge.

Items of every dataset are ``{"pixel_values": float (3, S, S) in [-1, 1], "text": str, "attributes": dict}``;
:func:`collate` batches them.
"""

from qldm.data.build import anime_holdout_names, build_dataset, collate
from qldm.data.captioner import HairColorCaptioner
from qldm.data.hair_eval import evaluate_captioner, format_confusion, load_hair_labels
from qldm.data.images import (
    HOLDOUT_SIZE,
    SPLITS,
    CorruptImageWarning,
    ImageFolderDataset,
    default_anime_faces_path,
    holdout_names,
)
from qldm.data.judge import binomial_test_vs_chance, judge_hair_colour, wilson_interval
from qldm.data.palette import (
    BACKGROUND_COLORS,
    EYE_COLORS,
    HAIR_COLORS,
    HAIR_PALETTE,
    HAIR_STYLES,
    SKIN_TONES,
    STYLE_PHRASES,
)
from qldm.data.procedural import ProceduralFaces, hair_mask, make_caption, parse_prompt, render_faces

__all__ = [
    "build_dataset",
    "collate",
    "anime_holdout_names",
    "holdout_names",
    "HOLDOUT_SIZE",
    "SPLITS",
    "HairColorCaptioner",
    "evaluate_captioner",
    "format_confusion",
    "load_hair_labels",
    "CorruptImageWarning",
    "ImageFolderDataset",
    "default_anime_faces_path",
    "binomial_test_vs_chance",
    "judge_hair_colour",
    "wilson_interval",
    "BACKGROUND_COLORS",
    "EYE_COLORS",
    "HAIR_COLORS",
    "HAIR_PALETTE",
    "HAIR_STYLES",
    "SKIN_TONES",
    "STYLE_PHRASES",
    "ProceduralFaces",
    "hair_mask",
    "make_caption",
    "parse_prompt",
    "render_faces",
]
