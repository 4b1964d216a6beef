"""Prompted hair-colour accuracy: both judges, chance, confusion, and the comparison-group labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qldm.data import HAIR_COLORS, HAIR_PALETTE, default_anime_faces_path, load_hair_labels
from qldm.eval.attributes import hair_colour_accuracy, judge_for_source
from qldm.eval.sources import evaluation_prompts, reference_images, run_label
from qldm.models import ModelConfig, QFFNConfig


def test_procedural_judge_is_exact_on_matching_renders_and_near_chance_on_shuffled_prompts():
    prompts = evaluation_prompts("procedural", 132)  # every colour 12 times, every colour/style pair 3 times
    faces = reference_images("procedural", prompts, image_size=32, seed=1)
    good = hair_colour_accuracy(faces, prompts)
    assert (good.n, good.correct, good.skipped) == (132, 132, 0)
    assert good.p0 == pytest.approx(1 / 11) and good.pvalue < 1e-100
    assert np.array_equal(good.confusion, np.diag(good.confusion.sum(1)))  # all on the diagonal
    # Same images, prompts shifted by one colour (styles kept): the images no longer follow the prompts.
    shifted = [p.replace(f"{c} hair", "§") for p, c in zip(prompts, HAIR_COLORS * 12)]
    shifted = [p.replace("§", f"{HAIR_COLORS[(i + 1) % 11]} hair") for i, p in enumerate(shifted)]
    bad = hair_colour_accuracy(faces, shifted)
    assert bad.correct == 0 and bad.pvalue == pytest.approx(1.0)
    assert bad.confusion.sum() == 132 and bad.ci_high < 0.05


def test_prompts_without_a_usable_attribute_are_skipped_and_counted():
    prompts = ["anime face, blue hair, long hair", "anime face, blue hair", "a cat"]
    faces = reference_images("procedural", [prompts[0]] * 3, image_size=32, seed=0)
    res = hair_colour_accuracy(faces, prompts)
    assert (res.n, res.skipped, res.predictions[1:]) == (1, 2, (None, None))
    assert res.p0 == 1.0 and res.pvalue == 1.0  # one prompted colour: no chance level to beat
    with pytest.raises(ValueError, match="no prompt names"):
        hair_colour_accuracy(faces, ["a cat"] * 3)
    with pytest.raises(ValueError, match="3 images but 2 prompts"):
        hair_colour_accuracy(faces, prompts[:2])
    with pytest.raises(ValueError, match="judge"):
        hair_colour_accuracy(faces, prompts, judge="clip")


def test_captioner_judge_reads_flat_palette_hair():
    cols = torch.tensor([HAIR_PALETTE[c] for c in HAIR_COLORS]).float() / 127.5 - 1  # (11, 3)
    x = cols[:, :, None, None].expand(-1, 3, 64, 64).clone()  # hair everywhere ...
    x[:, :, 30:, 16:48] = torch.tensor([255.0, 228, 206]).view(1, 3, 1, 1) / 127.5 - 1  # ... and a face below
    res = hair_colour_accuracy(x, [f"anime face, {c} hair" for c in HAIR_COLORS], judge="captioner")
    assert res.correct == 11 and res.judge == "captioner"
    assert judge_for_source("procedural") == "procedural" and judge_for_source("anime-faces") == "captioner"


@pytest.mark.data
@pytest.mark.skipif(not default_anime_faces_path().is_dir(), reason="anime-faces-64 not found")
def test_captioner_judge_on_hand_labelled_real_faces_reproduces_the_captioner_accuracy():
    from PIL import Image

    labels = load_hair_labels("eval")
    root = default_anime_faces_path()
    arrays = []
    for name, _ in labels:
        with Image.open(root / name) as im:
            arrays.append(np.asarray(im.convert("RGB"), dtype=np.float32))  # (64, 64, 3), as the captioner saw
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1  # (216, 3, 64, 64)
    names = [n for n, _ in labels]
    labels = dict(labels)
    res = hair_colour_accuracy(images, [f"anime face, {labels[n]} hair" for n in names], judge="captioner")
    assert res.n == len(names) == 216
    # The captioner's own evaluation scored 139/216 = 0.644 on these files; judging through [-1, 1] tensors
    # round-trips the uint8 pixels exactly, so the count must match.
    assert res.correct == 139


@pytest.mark.parametrize(
    ("kw", "label"),
    [
        ({}, "quantum"),
        ({"quantum_blocks": "none"}, "none"),
        ({"quantum_blocks": "none", "match_params": True}, "none (matched params)"),
        ({"qffn": QFFNConfig(branch="mlp")}, "mlp control"),
        ({"qffn": QFFNConfig(branch="shuffled")}, "shuffled control"),
        ({"qffn": QFFNConfig(gate_init=0.0, gate_trainable=False)}, "lambda=0 control"),
        # a trainable gate that starts at 0 is still the quantum model
        ({"qffn": QFFNConfig(gate_init=0.0)}, "quantum"),
    ],
)
def test_run_labels_follow_the_model_config(kw, label):
    cfg = ModelConfig(**kw)
    assert run_label(cfg) == label == run_label(cfg.to_dict())


def test_evaluation_prompts_are_balanced_and_cover_every_pair():
    prompts = evaluation_prompts("procedural", 44)
    assert len(set(prompts)) == 44  # 11 colours x 4 styles, each once
    real = evaluation_prompts("anime-faces", 22)
    assert all(real.count(f"anime face, {c} hair") == 2 for c in HAIR_COLORS)
    with pytest.raises(ValueError, match="at least 2"):
        evaluation_prompts("procedural", 1)
