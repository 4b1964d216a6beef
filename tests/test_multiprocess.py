"""Two gloo processes on CPU through ``accelerate launch``: a real data-parallel run, written once, resumed exactly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qldm.train.distributed import _launcher_count

ROOT = Path(__file__).resolve().parents[1]
# 32 micro faces at batch 8: 4 steps per epoch in one process, 2 in two; the branch executor draws from the global RNG
SETS = [
    "data.limit=32",
    "train.epochs=2",
    "train.checkpoint_every=1",
    "train.keep_checkpoints=4",
    "train.ema_decay=0.9",
    "sample.seeds=0",
    "model.qffn.executor=branch",
]
LAUNCH = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
LAUNCH += ["--mixed_precision", "no", "--dynamo_backend", "no"]

# Runs under `accelerate launch` (mode cut: dies after step 3 on every rank; mode resume: continues). Each rank
# records, per step, a fingerprint of each image of its batch and the next values its noise generator draws, and
# writes its final parameters.
DRIVER = """
import json, os, sys
import torch
from safetensors.torch import save_file
import qldm.models, qldm.train.loop as loop
from qldm.config import apply_overrides, make_preset
from qldm.train import train

out, mode, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
rank = int(os.environ["RANK"])
seen, built = {"images": [], "noise": []}, []
loss_fn, build = qldm.models.diffusion_loss, loop.build_unet

def recording_loss(unet, latents, *args, generator=None, **kwargs):
    seen["images"].append(latents.flatten(1).sum(1).tolist())
    ahead = torch.Generator().manual_seed(0)
    ahead.set_state(generator.get_state())
    seen["noise"].append(torch.randn(8, generator=ahead).tolist())
    return loss_fn(unet, latents, *args, generator=generator, **kwargs)

def recording_build(cfg):
    built.append(build(cfg))
    return built[-1]

qldm.models.diffusion_loss, loop.build_unet = recording_loss, recording_build

class Stop(Exception):
    pass

def stop(pos, loss):
    if mode == "cut" and pos.step == 3:
        raise Stop

try:
    train(apply_overrides(make_preset("micro"), sets), out, resume=mode == "resume", show_progress=False,
          export=False, samples=False, on_step=stop)
except Stop:
    pass
save_file({k: v.contiguous() for k, v in built[0].state_dict().items()}, f"{out}/rank{rank}-{mode}.safetensors")
with open(f"{out}/rank{rank}-{mode}.json", "w") as fh:
    json.dump(seen, fh)
"""


def _launch(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, **kw)


def _losses(run: Path) -> dict[int, float]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "step" in r]
    assert len(steps) == len(set(steps)), f"a step logged twice: {steps}"
    return {r["step"]: r["loss"] for r in records if "step" in r}


def test_launcher_count_reads_accelerate_launch_command_lines():
    assert _launcher_count(["/usr/bin/python3", "/usr/bin/accelerate", "launch", "--num_processes", "2", "x"]) == 2
    assert _launcher_count(["accelerate", "launch", "--cpu", "--num_processes=4", "-m", "qldm.cli"]) == 4
    assert _launcher_count(["accelerate", "launch", "x.py"]) is None
    assert _launcher_count(["python3", "-m", "pytest", "--num_processes", "2"]) is None


@pytest.mark.slow
def test_two_processes_train_one_run_and_resume_exactly(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    sets = [a for s in SETS for a in ("--set", s)]
    done = _launch(
        [*LAUNCH, "-m", "qldm.cli", "train", "--preset", "micro", *sets, "--out", str(full), "--no-progress"]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = [line for line in done.stdout.splitlines() if line.startswith("trained ")]
    assert len(summary) == 1 and summary[0].startswith("trained 4 steps (last loss ")  # one summary line
    # steps per epoch halve: 2 epochs of 32 images at batch 8 are 8 steps in one process, 4 in two
    assert sorted(_losses(full)) == [1, 2, 3, 4]
    ckpts = sorted(p.name for p in (full / "checkpoints").iterdir())
    assert ckpts == [f"step-0000000{i}" for i in (1, 2, 3, 4)]  # written once each, no leftover temporaries
    assert len(json.loads((full / "timings.json").read_text())["calls"]) == 1
    assert json.loads((full / "timings.json").read_text())["calls"][0]["processes"] == 2
    assert len(list((full / "cache").glob("latents-*.safetensors"))) == 1

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    for mode in ("cut", "resume"):
        r = _launch([*LAUNCH, str(driver), str(cut), mode, *SETS])
        assert r.returncode == 0, r.stderr[-3000:]
    seen = {(r, m): json.loads((cut / f"rank{r}-{m}.json").read_text()) for r in (0, 1) for m in ("cut", "resume")}
    # ranks see disjoint slices that cover each epoch (steps 1-2 = epoch 1; the cut run did steps 1-3)
    epoch1 = [set(img for batch in seen[r, "cut"]["images"][:2] for img in batch) for r in (0, 1)]
    assert len(epoch1[0]) == len(epoch1[1]) == 16 and not epoch1[0] & epoch1[1]
    for a, b in zip(seen[0, "cut"]["noise"], seen[1, "cut"]["noise"]):
        assert a != b  # each rank draws its own timesteps, noise and caption dropout
    for mode in ("cut", "resume"):  # DDP keeps the replicas identical
        w0, w1 = (load_file(str(cut / f"rank{r}-{mode}.safetensors")) for r in (0, 1))
        assert all(torch.equal(w0[k], w1[k]) for k in w0)
    # the resumed run (from step 3, mid-epoch 2) ends bit-identical to the uninterrupted one
    for name in ("unet.safetensors", "ema.safetensors"):
        a = load_file(str(full / "checkpoints" / "step-00000004" / name))
        b = load_file(str(cut / "checkpoints" / "step-00000004" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert _losses(full) == _losses(cut)


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [False, True], ids=["launcher-report", "quiet"])
def test_a_launch_that_loses_its_processes_is_refused(tmp_path, quiet):
    """``accelerate launch --cpu --num_processes 2`` starts one process: it must say so, not train alone.

    Our refusal is one line and comes first. What the launcher prints after it is its own report of a failed child
    (accelerate >= 1.16 raises with the child's stderr quoted, older versions a bare ``CalledProcessError``); with
    ``--quiet`` there is none, so the user sees exactly one line in every accelerate version.
    """
    cmd = ["accelerate", "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    cmd += ["--dynamo_backend", "no", *(["--quiet"] if quiet else [])]
    cmd += ["-m", "qldm.cli", "train", "--preset", "micro", "--out", str(tmp_path / "r")]
    r = _launch(cmd)
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if "qldm train: error:" in line)
    assert lines[first].startswith("qldm train: error:")
    assert "asked for 2 processes" in lines[first] and "--multi_gpu" in lines[first]
    assert "Traceback" not in "\n".join(lines[:first])
    assert f"{os.sep}qldm{os.sep}" not in r.stderr  # no frame of our code in any traceback the launcher adds
    if quiet:
        assert [line for line in lines if line.strip() and "warn" not in line.lower()] == [lines[first]]
    assert not (tmp_path / "r" / "checkpoints").exists()
