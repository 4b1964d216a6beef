"""One writer per output (case 1 of the reliability issue): every command that writes holds its ``--out``, and
processes sharing one hardware cache never pay for the same PUB twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qldm.cli import main
from qldm.train.runlock import RunLock, file_lock

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    """An untrained micro pipeline with its run config: enough to sample from."""
    from qldm.config import make_preset, save_config
    from qldm.models import build_pipeline

    folder = tmp_path_factory.mktemp("pipe") / "pipe"
    cfg = make_preset("micro")
    build_pipeline(cfg.model).save_pretrained(folder)
    save_config(cfg, folder / "run_config.json")
    return folder


def _wait_for(paths, procs, seconds=300):
    deadline = time.monotonic() + seconds
    while not all(p.is_file() for p in paths):
        assert all(p.poll() is None for p in procs), "a sampler ended early"
        assert time.monotonic() < deadline, "the samplers did not start"
        time.sleep(0.2)


def test_two_concurrent_samplings_submit_each_pub_once(pipe, tmp_path):
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "qldm.cli", "sample", "--checkpoint", str(pipe), "--prompt", "anime face"]
    argv += ["--n", "2", "--steps", "2", "--quantum-backend", "fake:FakeManilaV2", "--shots", "16"]
    argv += ["--hardware-steps", "all", "--no-progress", "--hardware-cache", str(cache)]
    a, b = tmp_path / "a", tmp_path / "b"
    opts = {"env": ENV, "cwd": ROOT, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    # the test holds the cache's job lock, so both samplers reach their first submission before either submits
    with file_lock(cache / ".jobs.lock"):
        first = subprocess.Popen([*argv, "--out", str(a)], **opts)
        other = subprocess.Popen([*argv, "--out", str(b)], **opts)
        try:
            _wait_for([a / "set.json", b / "set.json"], [first, other])  # each holds its --out by now
            busy = subprocess.run([*argv, "--out", str(a)], timeout=300, **opts)  # a second writer of a/
            assert not (cache / "jobs.jsonl").exists()  # nothing submitted while the test holds the jobs
        except BaseException:
            first.kill(), other.kill()
            raise
    assert busy.returncode == 2
    err = busy.stderr.strip().splitlines()
    assert len(err) == 1 and f"in use by another qldm process (pid {first.pid}" in err[0], err
    for proc in (first, other):
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
    records = [json.loads(line) for line in (cache / "jobs.jsonl").read_text().splitlines()]
    assert len(records) == 4  # 2 images x 2 hardware steps: one job each, paid once for both samplers
    assert len({r["key"] for r in records}) == 4 and len({r["job_id"] for r in records}) == 4
    for j in range(2):  # the second sampler took the first one's results: the same images
        pa, pb = (np.asarray(Image.open(d / "images" / f"p00-00{j}.png")) for d in (a, b))
        assert np.array_equal(pa, pb)
    assert sorted(p.name for p in (a / "images").iterdir()) == ["p00-000.png", "p00-001.png"]


@pytest.mark.parametrize(
    ("argv", "out_is_file"),
    [
        (["evaluate", "--images", "{tmp}"], False),
        (["features"], False),
        (["ablate", "--run", "{tmp}"], False),
        (["bp", "--design", "hea"], True),
        (["hardware", "plan", "--backend", "aer", "--out", "{out}"], True),
    ],
    ids=["evaluate", "features", "ablate", "bp", "hardware-plan"],
)
def test_every_writing_command_refuses_a_busy_output(tmp_path, capsys, argv, out_is_file):
    out = tmp_path / ("study.json" if out_is_file else "out")
    argv = [a.format(tmp=tmp_path, out=out) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    lock = RunLock.for_file(out) if out_is_file else RunLock(out)
    with lock:  # another qldm process (here: this one) holds the output
        before = sorted(p.name for p in tmp_path.rglob("*"))
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is in use by another qldm process" in err[0] and str(out) in err[0], err
        assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_refused_command_leaves_no_trace_of_its_lock(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["sample", "--run", str(tmp_path / "no-such-run"), "--out", str(out)]) == 2
    assert main(["bp", "--design", "nonsense", "--out", str(tmp_path / "study.json")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no lock file, no owner record
