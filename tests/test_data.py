"""Fast tests of qldm.data: image folders, procedural faces, prompts, the hair judge and its statistics."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import binomtest

from qldm.data import (
    HAIR_COLORS,
    HAIR_PALETTE,
    HAIR_STYLES,
    CorruptImageWarning,
    HairColorCaptioner,
    ImageFolderDataset,
    ProceduralFaces,
    binomial_test_vs_chance,
    build_dataset,
    collate,
    hair_mask,
    holdout_names,
    judge_hair_colour,
    make_caption,
    parse_prompt,
    render_faces,
    wilson_interval,
)


def _save(path, size=(40, 24), colour=(200, 30, 40), fmt="JPEG"):
    Image.new("RGB", size, colour).save(path, format=fmt)


# ---------------------------------------------------------------- image folders


def test_imagefolder_metadata_layout(tmp_path):
    (tmp_path / "images").mkdir()
    rows = []
    for i, colour in enumerate([(255, 255, 255), (0, 0, 0), (10, 200, 30)]):
        _save(tmp_path / "images" / f"{i}.jpg", size=(30 + 10 * i, 20), colour=colour)
        rows.append({"file_name": f"images/{i}.jpg", "text": f"caption {i}", "year": 2000 + i})
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = ImageFolderDataset(tmp_path, image_size=16)
    assert len(ds) == 3 and ds.skipped == []
    item = ds[0]
    assert item["pixel_values"].shape == (3, 16, 16) and item["pixel_values"].dtype == torch.float32
    assert item["text"] == "caption 0" and item["attributes"] == {"year": 2000}
    # White and black map to the ends of [-1, 1] (JPEG error of a flat colour is a few levels at most).
    assert ds[0]["pixel_values"].min() > 0.95 and ds[1]["pixel_values"].max() < -0.95
    for i in range(3):
        assert ds[i]["pixel_values"].min() >= -1.0 and ds[i]["pixel_values"].max() <= 1.0


def test_kaggle_flat_layout_with_optional_txt(tmp_path):
    _save(tmp_path / "a.jpg")
    _save(tmp_path / "b.png", fmt="PNG")
    (tmp_path / "a.txt").write_text("red hair\n")
    (tmp_path / "notes.md").write_text("not an image")
    ds = ImageFolderDataset(tmp_path, image_size=8)
    assert ds.file_names == ["a.jpg", "b.png"]
    assert [ds[i]["text"] for i in range(2)] == ["red hair", ""]
    assert ds[1]["pixel_values"].shape == (3, 8, 8)


def test_center_crop_keeps_the_middle(tmp_path):
    # 60x20: red side bands 20 px wide, a green 20x20 square in the middle; a centre crop sees only green.
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :20] = arr[:, 40:] = (255, 0, 0)
    arr[:, 20:40] = (0, 255, 0)
    Image.fromarray(arr).save(tmp_path / "wide.png")
    x = ImageFolderDataset(tmp_path, image_size=10)[0]["pixel_values"]
    assert torch.allclose(x[1], torch.ones(10, 10)) and torch.allclose(x[0], -torch.ones(10, 10))


def test_corrupt_files_skipped_counted_and_warned(tmp_path):
    _save(tmp_path / "good1.jpg")
    (tmp_path / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    good = tmp_path / "good2.jpg"
    _save(good, size=(64, 64))
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    with pytest.warns(CorruptImageWarning) as record:
        ds = ImageFolderDataset(tmp_path, image_size=8)
    assert sorted(ds.skipped) == ["garbage.jpg", "truncated.jpg"]
    assert len(ds) == 2 and ds.file_names == ["good1.jpg", "good2.jpg"]
    messages = " ".join(str(w.message) for w in record)
    assert "garbage.jpg" in messages and "truncated.jpg" in messages and "skipped 2" in messages


def test_folder_errors_name_the_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images found in .*empty"):
        ImageFolderDataset(empty, image_size=8)
    with pytest.raises(ValueError, match="missing"):
        ImageFolderDataset(tmp_path / "missing", image_size=8)
    (empty / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(CorruptImageWarning), pytest.raises(ValueError, match="could be read"):
        ImageFolderDataset(empty, image_size=8)
    with pytest.raises(ValueError, match="neither"):
        build_dataset(str(tmp_path / "nope"), image_size=8)
    (tmp_path / "empty2").mkdir()
    with pytest.raises(ValueError, match="no images found in .*empty2"):
        build_dataset(tmp_path / "empty2", image_size=8)
    with pytest.raises(ValueError, match="captions"):
        build_dataset("procedural", image_size=8, captions="clip")


def test_limit_and_custom_captioner(tmp_path):
    for i in range(5):
        _save(tmp_path / f"{i}.jpg")
    seen = []

    def captioner(image):
        seen.append(image.size)
        return "tagged", {"hair_color": "red"}

    ds = ImageFolderDataset(tmp_path, image_size=8, captioner=captioner, limit=3)
    assert len(ds) == 3 and seen == [(40, 24)] * 3  # the captioner sees the full-resolution image
    assert ds[2]["text"] == "tagged" and ds[2]["attributes"] == {"hair_color": "red"}
    ds = build_dataset(tmp_path, image_size=8, captions="hair", limit=2)
    assert ds[0]["text"] == "anime face, red hair"  # flat (200, 30, 40) everywhere reads as red


def test_collate_stacks_and_keeps_lists():
    ds = build_dataset("procedural", image_size=16, limit=4, seed=1)
    batch = collate([ds[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 3, 16, 16)
    assert batch["text"] == [ds[i]["text"] for i in range(4)]
    assert batch["attributes"][3] == ds.attributes[3]
    with pytest.raises(ValueError, match="empty"):
        collate([])


# ---------------------------------------------------------------- procedural faces


def test_procedural_determinism_and_seed_dependence():
    a = ProceduralFaces(64, image_size=32, seed=7)
    b = ProceduralFaces(64, image_size=32, seed=7)
    c = ProceduralFaces(64, image_size=32, seed=8)
    assert torch.equal(a.images, b.images) and a.texts == b.texts
    assert not torch.equal(a.images, c.images) and a.texts != c.texts
    x = a[0]["pixel_values"]
    assert x.shape == (3, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_procedural_captions_match_attributes_and_cover_palettes():
    ds = ProceduralFaces(800, image_size=16, seed=0)
    for i in range(len(ds)):
        attrs = ds[i]["attributes"]
        assert ds[i]["text"] == make_caption(attrs)
        parsed = parse_prompt(ds[i]["text"])
        assert parsed == {k: attrs[k] for k in ("hair_color", "hair_style", "eye_color", "background")}
    assert {a["hair_color"] for a in ds.attributes} == set(HAIR_COLORS)
    assert {a["hair_style"] for a in ds.attributes} == set(HAIR_STYLES)


def test_held_out_combos_never_appear():
    held = [("blue", "twintails"), ("pink", "short")]
    ds = ProceduralFaces(3000, image_size=8, seed=3, exclude_combos=held)
    combos = {(a["hair_color"], a["hair_style"]) for a in ds.attributes}
    assert combos.isdisjoint(held)
    assert ("blue", "long") in combos and ("red", "twintails") in combos  # the parts still appear
    with pytest.raises(ValueError, match="every"):
        ProceduralFaces(4, image_size=8, hair_colors=["red"], hair_styles=["bob"], exclude_combos=[("red", "bob")])
    with pytest.raises(ValueError, match="hair style"):
        ProceduralFaces(4, image_size=8, exclude_combos=[("red", "mohawk")])


def test_palettes_are_immutable():
    assert isinstance(HAIR_COLORS, tuple) and isinstance(HAIR_STYLES, tuple)
    with pytest.raises(TypeError):
        HAIR_PALETTE["blue"] = (0, 0, 0)


def test_parse_prompt():
    assert parse_prompt("Anime face, BLUE hair, twintails, green eyes, white background") == {
        "hair_color": "blue",
        "hair_style": "twintails",
        "eye_color": "green",
        "background": "white",
    }
    assert parse_prompt("a silver-haired girl with a bob cut") == {"hair_color": "white", "hair_style": "bob"}
    assert parse_prompt("long hair, red eyes") == {"hair_style": "long", "eye_color": "red"}
    assert parse_prompt("a cat") == {}


def test_hair_mask_is_hair_in_the_render():
    for style in HAIR_STYLES:
        attrs = [
            {"hair_color": "green", "hair_style": style, "eye_color": "blue", "skin": "fair", "background": "white"}
        ]
        img = render_faces(attrs, 32)[0].permute(1, 2, 0).numpy().astype(int)  # (S, S, 3)
        mask = hair_mask(style, 32)
        assert 40 < mask.sum() < 32 * 32 / 2
        green = np.array(HAIR_PALETTE["green"])
        assert np.abs(img[mask] - green).max() < 40  # shading and jitter only
        assert (np.abs(img[~mask] - green).sum(-1) < 15).mean() < 0.2  # little hair-coloured outside
    with pytest.raises(ValueError, match="hair style"):
        hair_mask("mohawk", 32)


# ---------------------------------------------------------------- judge and statistics


@pytest.mark.parametrize("size", [16, 32, 64])
def test_judge_exact_on_clean_and_robust_to_noise_and_blur(size):
    ds = ProceduralFaces(330, image_size=size, seed=11)
    x = ds.images.float() / 127.5 - 1.0  # (N, 3, S, S)
    truth = [a["hair_color"] for a in ds.attributes]
    g = torch.Generator().manual_seed(0)
    noisy = x + 0.25 * torch.randn(x.shape, generator=g)
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    both = blurred + 0.15 * torch.randn(x.shape, generator=g)
    assert judge_hair_colour(x, ds.attributes) == truth
    for imgs in (noisy, blurred, both):
        acc = np.mean([p == t for p, t in zip(judge_hair_colour(imgs, ds.attributes), truth)])
        assert acc >= 0.97
    # A face whose hair was swapped for another colour is judged by what was drawn, not by the prompt.
    wrong = [dict(a, hair_color="blue" if a["hair_color"] != "blue" else "red") for a in ds.attributes[:20]]
    swapped = render_faces(wrong, size).float() / 127.5 - 1.0
    assert judge_hair_colour(swapped, ds.attributes[:20]) == [a["hair_color"] for a in wrong]
    with pytest.raises(ValueError, match="styles"):
        judge_hair_colour(x[:3], ds.attributes[:2])


def test_wilson_interval_and_binomial_test():
    for k, n in [(139, 216), (0, 10), (10, 10), (3, 7)]:
        ref = binomtest(k, n).proportion_ci(0.95, method="wilson")  # scipy's own Wilson interval
        assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-6)
    r = binomial_test_vs_chance(60, 200, 1 / 11)
    assert r.pvalue < 1e-15 and r.accuracy == 0.3 and r.ci_low < 0.3 < r.ci_high
    assert binomial_test_vs_chance(18, 200, 1 / 11).pvalue > 0.4  # at chance: not significant
    with pytest.raises(ValueError, match="p0"):
        binomial_test_vs_chance(1, 2, 1.5)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_captioner_names_flat_palette_hair():
    # The captioner's rules and the procedural palette share one vocabulary: a face whose crown is a palette
    # colour is captioned with that colour's name.
    captioner = HairColorCaptioner()
    for name, rgb in HAIR_PALETTE.items():
        img = np.zeros((64, 64, 3), np.uint8)
        img[:] = (255, 228, 206)
        img[:22] = rgb
        assert captioner(img) == (f"anime face, {name} hair", {"hair_color": name})
    with warnings.catch_warnings(), pytest.raises(ValueError, match="uint8"):
        captioner(np.zeros((8, 8), np.float32))


# ---------------------------------------------------------------- held-out split


def test_holdout_names_depend_on_names_only():
    names = [f"images/{i}.jpg" for i in range(50)]
    held = holdout_names(names, 7)
    assert len(held) == 7 and held <= set(names)
    assert holdout_names(list(reversed(names)), 7) == held  # order of the listing does not matter
    assert holdout_names(names, 7) == held  # deterministic
    assert holdout_names(names, 100) == set(names)
    with pytest.raises(ValueError, match="holdout size"):
        holdout_names(names, -1)


def test_imagefolder_select_and_dataset_id(tmp_path):
    for name in ("a", "b", "c"):
        _save(tmp_path / f"{name}.png", fmt="PNG")
    every = ImageFolderDataset(tmp_path, image_size=8)
    some = ImageFolderDataset(tmp_path, image_size=8, select=lambda n: n != "b.png", name="train")
    assert some.file_names == ["a.png", "c.png"]
    assert len({every.dataset_id, some.dataset_id, ImageFolderDataset(tmp_path, image_size=4).dataset_id}) == 3
    with pytest.raises(ValueError, match="passes the selection 'none'"):
        ImageFolderDataset(tmp_path, image_size=8, select=lambda n: False, name="none")


def test_split_is_for_anime_faces_only(tmp_path):
    _save(tmp_path / "a.png", fmt="PNG")
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset("procedural", image_size=16, limit=4, split="test")
    for source in ("procedural", str(tmp_path)):
        with pytest.raises(ValueError, match="only source='anime-faces' has a held-out split"):
            build_dataset(source, image_size=16, limit=4, split="holdout")
