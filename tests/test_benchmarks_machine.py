"""benchmarks/_machine.py: the machine record every benchmark script writes into its JSON."""

from __future__ import annotations

import calendar
import importlib.util
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_machine", ROOT / "benchmarks" / "_machine.py")
machine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(machine)

pytestmark = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout (commit and dirty flag)")

KEYS = ["cpu", "cores", "threads", "torch", "commit", "dirty", "date_utc", "load_avg"]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_machine_info_names_the_machine_and_the_checkout():
    info = machine.machine_info(3)
    assert list(info) == KEYS
    assert info["cores"] == os.cpu_count()
    assert info["threads"] == 3
    assert info["torch"] == torch.__version__
    assert isinstance(info["cpu"], str)
    assert re.fullmatch(r"[0-9a-f]{7,40}", info["commit"])
    assert info["commit"] == _git("rev-parse", "--short", "HEAD")
    assert info["dirty"] == bool(_git("status", "--porcelain"))
    assert len(info["load_avg"]) == 3 and all(v >= 0 for v in info["load_avg"])
    stamp = calendar.timegm(time.strptime(info["date_utc"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(stamp - time.time()) < 600  # the UTC date of the call, not local time


def test_machine_info_defaults_and_extra():
    info = machine.machine_info(extra={"gpu": None, "threads": 99})
    assert list(info) == [*KEYS, "gpu"]
    assert info["threads"] == 99  # extra overrides a standard entry
    assert machine.machine_info()["threads"] == torch.get_num_threads()


def test_git_commit_full_and_outside_a_checkout(tmp_path, monkeypatch):
    full = machine.git_commit(short=False)
    assert re.fullmatch(r"[0-9a-f]{40}", full)
    assert full.startswith(machine.git_commit())
    assert machine.machine_info(1, short_commit=False)["commit"] == full
    # tmp_path is not inside a git checkout (GIT_CEILING_DIRECTORIES stops git looking above it)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert machine.git_commit(tmp_path) is None
    assert machine.git_dirty(tmp_path) is None
