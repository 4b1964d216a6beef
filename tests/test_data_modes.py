"""Images in any mode are converted correctly, and what a run skips is counted, explained and listed (cases 6 and 7
of the reliability issue)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from qldm.cli import main
from qldm.data import ImageFolderDataset
from qldm.data.images import CorruptImageWarning

SIZE = 8


def _gradient16(path) -> np.ndarray:
    """A 16-bit grey PNG whose values span 0..65535; returns the 8-bit values it should become."""
    values = (np.arange(SIZE * SIZE, dtype=np.uint32).reshape(SIZE, SIZE) * 1040).astype(np.uint16)  # 0..65520
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")  # really 16 bits on disk
    return np.round(values / 257.0).astype(np.uint8)


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    want = _gradient16(tmp_path / "deep.png")
    ds = ImageFolderDataset(tmp_path, image_size=SIZE)
    got = ds.images[0].numpy()  # (3, S, S) uint8
    assert (got == want[None]).all()  # every channel, every pixel: value / 257
    assert (got == 255).mean() < 0.02  # not the near-white image Pillow's clip gives


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red under the alpha
    rgba[..., 3] = np.repeat([0, 255], SIZE * SIZE // 2).reshape(SIZE, SIZE)  # top half transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    grey = np.zeros((SIZE, SIZE, 2), dtype=np.uint8)
    grey[..., 1] = 128  # black at half opacity
    Image.fromarray(grey, mode="LA").save(tmp_path / "la.png")
    ds = ImageFolderDataset(tmp_path, image_size=SIZE)
    la, rgba_img = (ds.images[ds.file_names.index(n)].numpy() for n in ("la.png", "rgba.png"))
    assert (rgba_img[:, : SIZE // 2] == 255).all()  # transparent: white, not the hidden red
    assert (rgba_img[:, SIZE // 2 :] == np.array([200, 0, 0])[:, None, None]).all()  # opaque: as it was
    assert (la == 127).all()  # black over white at alpha 128/255


def test_a_run_lists_what_it_skipped_and_why(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(16):  # 16 readable faces: two batches of the micro preset
        Image.fromarray(np.full((32, 32, 3), 10 * i, dtype=np.uint8)).save(data / f"ok-{i:02d}.png")
    (data / "garbage.png").write_bytes(b"not a png")
    os.symlink("loop.png", data / "loop.png")  # a link to itself
    os.symlink("missing.png", data / "gone.png")
    (data / "sub").mkdir()
    os.symlink("..", data / "sub" / "up")  # a folder loop
    out = tmp_path / "run"
    argv = ["train", "--preset", "micro", "--set", f"data.source={data}", "--set", "data.holdout=none"]
    argv += ["--set", "train.max_steps=1"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    listed = (out / "skipped_files.tsv").read_text().splitlines()
    assert listed == [
        "file\treason",
        "garbage.png\tunreadable: cannot identify image file " + repr(str(data / "garbage.png")),
        "gone.png\tbroken symlink",
        "loop.png\tsymlink loop",
        "sub/up\tsymlink loop (links to an enclosing folder; not followed)",
    ]
    summary = [str(w.message) for w in caught if "data file(s)" in str(w.message)]
    kinds = "1 broken symlink, 2 symlink loop, 1 unreadable"
    assert summary == [f"skipped 4 data file(s) ({kinds}); listed in {out / 'skipped_files.tsv'}"]
    assert sum(issubclass(w.category, CorruptImageWarning) and "skipping" in str(w.message) for w in caught) == 4


@pytest.mark.parametrize(
    ("mode", "suffix", "mean", "tol"),
    [
        ("1", ".png", 90, 20),  # dithered black and white: the mean survives
        ("L", ".png", 90, 0),
        ("P", ".png", 90, 15),  # the web palette's nearest grey
        ("CMYK", ".tif", 90, 1),
        ("I", ".tif", 0, 0),  # a 32-bit integer image is read on the 16-bit scale: 90 / 257 rounds to 0
        ("F", ".tif", 90, 0),  # floats above 1 are taken as 0-255 values
    ],
)
def test_every_mode_pillow_reads_becomes_8_bit_rgb(tmp_path, mode, suffix, mean, tol):
    from qldm.data.images import to_rgb

    path = tmp_path / f"x{suffix}"
    Image.new("RGB", (SIZE, SIZE), (90, 90, 90)).convert(mode).save(path)
    with Image.open(path) as im:
        assert im.mode == mode
        out = np.asarray(to_rgb(im))
    assert out.dtype == np.uint8 and out.shape == (SIZE, SIZE, 3)
    assert abs(out.mean() - mean) <= tol, (mode, out.mean())
