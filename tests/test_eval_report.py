"""``qldm evaluate`` end to end: on folders of PNGs (--images) and on saved pipelines (--run)."""

from __future__ import annotations

import json

import pytest
import torch

from qldm.cli import main
from qldm.eval import gaussian_blur
from qldm.eval.report import mean_ci, welch_diff
from qldm.eval.sources import evaluation_prompts, load_image_set, reference_images, save_image_set

N = 44


def write_sets(root, label, images_fn, seeds=(0, 1)):
    prompts = evaluation_prompts("procedural", N)
    for seed in seeds:
        images = images_fn(reference_images("procedural", prompts, image_size=32, seed=100 + seed))
        save_image_set(
            images, prompts, root / label / f"seed-{seed}", label=label, seed=seed, source="procedural",
            holdout=["blue/twintails", "red/long"], steps=7, guidance=2.5,
        )  # fmt: skip
    return root / label


def test_mean_ci_uses_student_t():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / 3**0.5, rel=1e-6)
    assert mean_ci([5.0])[1] != mean_ci([5.0])[1]  # NaN: one value has no interval


def test_welch_diff_matches_the_welch_satterthwaite_formula():
    from scipy import stats

    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    va, vb = 1.0 / 3, (20 / 3) / 4  # sample variance / n
    se, df = (va + vb) ** 0.5, (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)  # df = 4.0755
    got = welch_diff(a, b)
    assert got["delta"] == -3.0
    half = stats.t.ppf(0.975, df) * se
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((-3.0 - half, -3.0 + half), rel=1e-12)
    assert got["p"] == pytest.approx(2 * stats.t.sf(3.0 / se, df), rel=1e-12)
    assert welch_diff([1.0], b) is None and welch_diff(a, [2.0]) is None  # one value: no comparison


def test_image_set_round_trips_through_png(tmp_path):
    prompts = evaluation_prompts("procedural", 4)
    images = reference_images("procedural", prompts, image_size=32, seed=0)
    save_image_set(images, prompts, tmp_path / "s", label="quantum")
    back, back_prompts, meta = load_image_set(tmp_path / "s")
    assert torch.allclose(back, images, atol=1 / 127.5 * 0.51) and back_prompts == prompts
    assert meta["label"] == "quantum"
    with pytest.raises(ValueError, match="neither metadata.jsonl nor prompts.txt"):
        load_image_set(tmp_path)


def test_evaluate_images_report_ranks_clean_above_blurred(tmp_path, capsys):
    clean = write_sets(tmp_path, "quantum", lambda x: x)
    blurred = write_sets(tmp_path, "none", lambda x: gaussian_blur(x, 1.0))
    out = tmp_path / "report"
    assert main(["evaluate", "--images", str(clean), "--images", str(blurred), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    groups = {g["label"]: g for g in report["groups"]}
    assert set(groups) == {"real (held-out)", "quantum", "none"}
    assert groups["quantum"]["sets"] == groups["none"]["sets"] == 2
    assert groups["none"]["fid_mean"] > 10 * groups["quantum"]["fid_mean"]
    assert groups["none"]["hf_mean"] < 0.6 * groups["quantum"]["hf_mean"]
    assert groups["quantum"]["acc_pooled"] == 1.0 and groups["quantum"]["acc_pooled_n"] == 2 * N
    assert groups["quantum"]["acc_pvalue"] < 1e-30
    assert groups["none"]["fid_p_vs_quantum"] < 0.05
    # Each colour/style pair appears once in 44 prompts: 2 held-out pairs x 2 seeds, all judged right.
    assert (groups["quantum"]["holdout_k"], groups["quantum"]["holdout_n"]) == (4, 4)
    md = (out / "report.md").read_text()
    assert "FID (offline features: handcrafted-v1)" in md and "| quantum |" in md
    # the header says how the images were made (their set.json), not this command's --steps/--seeds defaults
    assert (report["meta"]["steps"], report["meta"]["guidance"], report["meta"]["seeds"]) == (7, 2.5, [0, 1])
    assert report["meta"]["n"] == N and len(report["meta"]["sets"]) == 4
    assert f"7 steps, guidance 2.5, seeds [0, 1], {N} images per seed" in md
    assert (out / "procedural-32-spectrum.png").is_file() and (out / "procedural-32-spectrum-ratio.png").is_file()
    assert "report ->" in capsys.readouterr().out


def test_evaluate_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", "--out", str(tmp_path)]) == 2
    assert "at least one --run or --images" in capsys.readouterr().err
    assert main(["evaluate", "--images", str(tmp_path), "--seeds", "0,x", "--out", str(tmp_path)]) == 2
    assert "--seeds" in capsys.readouterr().err
    args = [
        "evaluate",
        "--images",
        str(tmp_path),
        "--inception",
        str(tmp_path / "no.pth"),
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 2
    assert "no.pth" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "model_index.json" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_samples_saved_pipelines_and_groups_them(tmp_path):
    import dataclasses

    from qldm.config import RunConfig, make_preset, save_config
    from qldm.models import ModelConfig, QFFNConfig, build_pipeline

    tiny = ModelConfig(
        image_size=16, vae_block_channels=(8, 16), unet_block_channels=(16, 32), attention_head_dim=8,
        text_dim=16, text_heads=2, text_layers=1, max_text_length=12, qffn=QFFNConfig(n_qubits=2),
    )  # fmt: skip
    base = make_preset("tiny")
    runs = []
    for name, model in [("q", tiny), ("c", dataclasses.replace(tiny, quantum_blocks="none"))]:
        torch.manual_seed(0)
        pipe = build_pipeline(model)
        cfg = RunConfig(name=name, model=model, data=dataclasses.replace(base.data, image_size=16), sample=base.sample)
        pipe.save_pretrained(tmp_path / name / "pipeline")
        save_config(cfg, tmp_path / name / "pipeline" / "run_config.json")
        runs += ["--run", str(tmp_path / name)]
    out = tmp_path / "rep"
    argv = ["evaluate", *runs, "--n", "6", "--steps", "2", "--seeds", "0,1", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    labels = [g["label"] for g in report["groups"]]
    assert labels == ["real (held-out)", "quantum", "none"]
    first = load_image_set(out / "samples" / "q" / "seed-0")[0]
    assert first.shape == (6, 3, 16, 16)
    # Same run and seed -> same images (sampling is seeded); a different seed differs.
    assert main([*argv[:-1], str(tmp_path / "rep2")]) == 0
    assert torch.equal(load_image_set(tmp_path / "rep2" / "samples" / "q" / "seed-0")[0], first)
    assert not torch.equal(load_image_set(out / "samples" / "q" / "seed-1")[0], first)
    # `qldm sample` records how it sampled; `qldm evaluate --images` reports those settings, not its own defaults
    sampled = tmp_path / "sampled"
    assert (
        main(["sample", "--run", str(tmp_path / "q"), "--n", "1", "--steps", "3", "--seed", "5", "--out", str(sampled)])
        == 0
    )
    settings = json.loads((sampled / "set.json").read_text())
    assert (settings["steps"], settings["seed"], settings["label"], settings["image_size"]) == (3, 5, "quantum", 16)
    assert main(["evaluate", "--images", str(sampled), "--out", str(tmp_path / "rep3")]) == 0
    meta = json.loads((tmp_path / "rep3" / "report.json").read_text())["meta"]
    assert (meta["steps"], meta["seeds"], meta["guidance"]) == (3, 5, settings["guidance"])


def test_reads_the_output_layout_of_qldm_sample(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    prompts = ["anime face, blue hair, long hair", "anime face, red hair, short hair"]
    (tmp_path / "prompts.txt").write_text("".join(f"p{i:02d}: {p}\n" for i, p in enumerate(prompts)))
    for p in range(2):
        for j in range(3):
            Image.new("RGB", (16, 16), (10 * p, 20 * j, 0)).save(tmp_path / "images" / f"p{p:02d}-{j:03d}.png")
    images, got, meta = load_image_set(tmp_path)
    assert images.shape == (6, 3, 16, 16) and got == [prompts[0]] * 3 + [prompts[1]] * 3 and meta == {}
    assert images[4, 1, 0, 0].item() == pytest.approx(20 / 127.5 - 1)  # p01-001: green = 20
