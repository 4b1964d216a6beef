"""Inference-time ablations of the quantum branch (qldm/eval/ablation.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qldm.eval.ablation import ablate, paired_bootstrap_fid, paired_t
from qldm.qffn import QFFNConfig, QuantumFeedForward
from qldm.quantum import StatevectorExecutor

F64 = torch.float64


def _qffn() -> QuantumFeedForward:
    torch.manual_seed(0)
    cfg = QFFNConfig(n_qubits=3, gate_init=0.7)
    return QuantumFeedForward(8, config=cfg, executor=StatevectorExecutor(dtype=F64)).double().eval()


def test_lambda0_removes_exactly_the_quantum_contribution_and_restores_the_gate():
    m = _qffn()
    x = torch.randn(2, 5, 8, dtype=F64)
    with torch.no_grad():
        full = m(x)
        contribution = m.gate * m.post(m.quantum(m.pre(x)))  # (2, 5, 8)
        with ablate(m, "lambda0") as n:
            ablated = m(x)
        after = m(x)
    assert n == 1
    torch.testing.assert_close(full - ablated, contribution, rtol=0, atol=1e-12)
    assert contribution.abs().max() > 1e-3  # the check is not vacuous
    torch.testing.assert_close(after, full, rtol=0, atol=0)
    assert float(m.gate.detach()) == pytest.approx(0.7)


def test_mean_and_shuffle_act_within_each_image():
    m = _qffn()
    x = torch.randn(2, 6, 8, dtype=F64)
    with torch.no_grad():
        q = m.quantum(m.pre(x))  # (2, 6, 3)
        seen = {}
        for mode in ("mean", "shuffle"):
            with ablate(m, mode, seed=1):  # hooks run in order: this one sees the ablated output
                hook = m.quantum.register_forward_hook(lambda _m, _i, out, mode=mode: seen.__setitem__(mode, out))
                m(x)
                hook.remove()
    torch.testing.assert_close(seen["mean"], q.mean(dim=1, keepdim=True).expand_as(q))
    for b in range(2):  # a permutation of the same image's token outputs
        got = sorted(map(tuple, seen["shuffle"][b].tolist()))
        assert got == sorted(map(tuple, q[b].tolist()))
    assert not torch.equal(seen["shuffle"], q)


def test_ablate_refuses_unknown_mode_and_models_without_a_circuit():
    with pytest.raises(ValueError, match="unknown ablation"), ablate(_qffn(), "bogus"):
        pass
    with pytest.raises(ValueError, match="no Q-FFN"), ablate(torch.nn.Linear(2, 2), "lambda0"):
        pass


def test_paired_statistics():
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    d = paired_t(base, base + 0.5 + 0.01 * rng.normal(size=200))
    assert d.ci_low < 0.5 < d.ci_high and d.ci_high - d.ci_low < 0.01
    ref = rng.normal(size=(300, 4))
    same = paired_bootstrap_fid(ref, ref[:100], ref[:100], draws=50)
    assert same.delta == 0 and same.ci_low == 0 and same.ci_high == 0
    shifted = paired_bootstrap_fid(ref, ref[:100], ref[:100] + 1.0, draws=50)
    assert shifted.delta > 3 and shifted.ci_low > 0


@pytest.fixture(scope="module")
def micro_run_dir(tmp_path_factory):
    from qldm.cli import main

    out = tmp_path_factory.mktemp("abl") / "run"
    assert main(["train", "--preset", "micro", "--set", "sample.seeds=0", "--out", str(out), "--no-progress"]) == 0
    return out


def test_ablate_command_reports_paired_changes_and_reuses_finished_sets(micro_run_dir, tmp_path, capsys):
    import json

    from qldm.cli import main
    from qldm.eval.sources import load_image_set

    out = tmp_path / "abl"
    args = ["ablate", "--run", str(micro_run_dir), "--n", "24", "--steps", "2", "--modes", "lambda0,shuffle"]
    args += ["--bootstrap", "20", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    report = json.loads((out / "ablation.json").read_text())
    assert set(report["sets"]) == {"none/seed-0", "lambda0/seed-0", "shuffle/seed-0"}
    for mode in ("lambda0", "shuffle"):
        d = report["paired_change_vs_none"][mode]
        assert set(d) == {"fid", "hf_ratio", "hair_accuracy", "hair_colour_changed", "pixel_change"}
        assert d["fid"]["n"] == 24 and d["hair_colour_changed"]["n"] == 24
    base, prompts, _ = load_image_set(out / "none" / "seed-0")
    zero, _, _ = load_image_set(out / "lambda0" / "seed-0")
    assert (base - zero).abs().max() > 0  # the circuit's contribution reaches the pixels
    grey = (((base + 1) * 127.5).round() - ((zero + 1) * 127.5).round()).abs()  # the saved PNGs' grey levels
    change = report["paired_change_vs_none"]["lambda0"]
    assert change["pixel_change"]["mean"] == pytest.approx(float(grey.mean()), rel=1e-5)
    assert change["pixel_change"]["max"] == pytest.approx(float(grey.max()), rel=1e-5)
    from qldm.eval.attributes import hair_colour_accuracy, judge_for_source

    judge = judge_for_source("procedural")
    a = hair_colour_accuracy(base, prompts, judge=judge).predictions
    b = hair_colour_accuracy(zero, prompts, judge=judge).predictions
    assert change["hair_colour_changed"]["share"] == pytest.approx(sum(x != y for x, y in zip(a, b)) / 24)
    stamp = (out / "none" / "seed-0" / "set.json").stat().st_mtime_ns
    assert main(args) == 0  # a rerun measures the saved sets instead of sampling again
    assert (out / "none" / "seed-0" / "set.json").stat().st_mtime_ns == stamp
    assert main(["ablate", "--run", str(micro_run_dir), "--modes", "none", "--out", str(out)]) == 2
    assert "--modes takes" in capsys.readouterr().err
