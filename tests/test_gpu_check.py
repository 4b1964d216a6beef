"""``benchmarks/gpu_check.sh``: a dry run on the CPU writes every field; without CUDA a real run refuses in one line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "benchmarks/gpu_check.sh", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


@pytest.mark.slow
def test_dry_run_writes_every_field(tmp_path):
    out = tmp_path / "gpu.json"
    r = _run("--dry-run", "--out", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["dry_run"] is True and data["machine"]["gpu"] is None
    assert "gpu" in data["gpu_tests"]["summary"] or data["gpu_tests"]["returncode"] in (0, 5)
    layer = {(row["n"], row["executor"]): row for row in data["layer"]}
    assert set(layer) == {(n, e) for n in (4, 8, 16) for e in ("statevector", "tensornet")}
    assert all(row["tokens_per_s"] > 0 for row in layer.values() if row["tokens_per_s"] is not None)
    assert layer[(16, "statevector")]["tokens_per_s"] is None  # 32 wires: not run, and said so
    step = data["paper_step"]
    assert step["quantum"]["seconds_per_step"] > 0 and step["classical"]["seconds_per_step"] > 0
    ratio = step["quantum"]["seconds_per_step"] / step["classical"]["seconds_per_step"]
    assert step["quantum_over_classical"] == pytest.approx(ratio)
    assert data["anime64_denoiser"]["steps_per_s"] > 0
    assert isinstance(data["aer_gpu"]["available"], bool)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_without_cuda_it_refuses_in_one_line(tmp_path):
    r = _run("--out", str(tmp_path / "gpu.json"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "gpu_check: error: no CUDA device here; run it on a GPU machine (or --dry-run to test the script)"
    ]
    assert not (tmp_path / "gpu.json").exists()
