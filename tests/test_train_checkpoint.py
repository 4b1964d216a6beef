"""Checkpoints are atomic and complete; EMA behaves as documented; RNG snapshots restore every generator."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from diffusers.training_utils import EMAModel

from qldm.config import make_preset
from qldm.train import checkpoint as ckpt
from qldm.train.checkpoint import Position, latest_checkpoint, load_checkpoint, save_checkpoint


def _parts(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    ema = EMAModel(model.parameters(), decay=0.9)
    return model, opt, sched, ema


def _step(model, opt, sched, ema):
    loss = model(torch.randn(16, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    sched.step()
    ema.step(model.parameters())


def _save(root, step, model, opt, sched, ema, gen):
    return save_checkpoint(
        root,
        position=Position(step, 0, step),
        cfg=make_preset("tiny"),
        unet=model,
        ema=ema,
        optimizer=opt,
        lr_scheduler=sched,
        generator=gen,
        keep=3,
    )


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, opt, sched, ema = _parts()
    gen = torch.Generator().manual_seed(0)
    _step(model, opt, sched, ema)
    first = _save(tmp_path, 1, model, opt, sched, ema, gen)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    files = sorted(p.name for p in first.iterdir())
    assert files == ["ema.safetensors", "run_config.json", "state.pt", "unet.safetensors"]

    _step(model, opt, sched, ema)

    def crash(*args, **kwargs):  # the process dies while writing state.pt
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2, model, opt, sched, ema, gen)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]  # no partial step-2, no temp folder
    assert sorted(p.name for p in first.iterdir()) == files

    # a hard kill (no cleanup) leaves a temp folder: never taken for a checkpoint, and the next save clears it
    (tmp_path / ".tmp-step-00000002-999").mkdir()
    assert latest_checkpoint(tmp_path) == first
    fresh, o2, s2, e2 = _parts(seed=1)
    pos, _ = load_checkpoint(first, unet=fresh, ema=e2, optimizer=o2, lr_scheduler=s2, generator=None)
    assert pos == Position(1, 0, 1)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, saved[k])
    _save(tmp_path, 3, model, opt, sched, ema, gen)
    assert not list(tmp_path.glob(".tmp-*"))


def test_checkpoint_restores_optimizer_scheduler_ema_and_rng(tmp_path):
    model, opt, sched, ema = _parts()
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        _step(model, opt, sched, ema)
    torch.manual_seed(11)
    random.seed(3)
    np.random.seed(4)
    gen.manual_seed(6)
    path = _save(tmp_path, 3, model, opt, sched, ema, gen)
    expect = (torch.rand(3), random.random(), np.random.rand(), torch.rand(2, generator=gen))
    _step(model, opt, sched, ema)
    ref = [p.detach().clone() for p in model.parameters()], [s.clone() for s in ema.shadow_params]

    m2, o2, s2, e2 = _parts(seed=7)
    gen2 = torch.Generator()
    load_checkpoint(path, unet=m2, ema=e2, optimizer=o2, lr_scheduler=s2, generator=gen2)
    got = (torch.rand(3), random.random(), np.random.rand(), torch.rand(2, generator=gen2))
    assert torch.equal(got[0], expect[0]) and got[1] == expect[1] and got[2] == expect[2]
    assert torch.equal(got[3], expect[3])
    assert e2.optimization_step == 3 and s2.last_epoch == 3
    torch.manual_seed(11)  # same data as the reference step
    torch.rand(3)
    _step(m2, o2, s2, e2)
    for a, b in zip(m2.parameters(), ref[0]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(e2.shadow_params, ref[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_keep_only_newest(tmp_path):
    model, opt, sched, ema = _parts()
    for s in range(1, 6):
        _save(tmp_path, s, model, opt, sched, ema, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"step-0000000{i}" for i in (3, 4, 5)]


def test_ema_decay_zero_copies_weights_and_shadow_updates():
    model, opt, sched, _ = _parts()
    ema0 = EMAModel(model.parameters(), decay=0.0)
    ema = EMAModel(model.parameters(), decay=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        _step(model, opt, sched, ema)
        ema0.step(model.parameters())
    # decay 0: the shadow is exactly the current weights
    for s, p in zip(ema0.shadow_params, model.parameters()):
        assert torch.equal(s, p.detach())
    # decay 0.9 (with diffusers' warm-up (1+t)/(10+t)): the shadow moved, but lags behind the weights
    moved = sum(float((s - b).abs().sum()) for s, b in zip(ema.shadow_params, before))
    lag = sum(float((s - p.detach()).abs().sum()) for s, p in zip(ema.shadow_params, model.parameters()))
    assert moved > 1e-4 and lag > 1e-6
    # one explicit update with a known decay: shadow <- d * shadow + (1 - d) * w
    d = ema.get_decay(ema.optimization_step + 1)
    old = [s.clone() for s in ema.shadow_params]
    ema.step(model.parameters())
    for s, o, p in zip(ema.shadow_params, old, model.parameters()):
        torch.testing.assert_close(s, d * o + (1 - d) * p.detach())


def test_checkpoint_records_circuit_and_executor_and_refuses_another_circuit(tmp_path):
    from conftest import micro_model

    from qldm.models import CircuitMismatchError, build_unet

    def parts(**qffn):
        torch.manual_seed(0)
        unet = build_unet(micro_model(qffn=qffn))
        opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
        return unet, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), EMAModel(unet.parameters())

    unet, opt, sched, ema = parts()
    path = save_checkpoint(
        tmp_path, position=Position(1, 0, 1), cfg=make_preset("micro"), unet=unet, ema=ema, optimizer=opt,
        lr_scheduler=sched, generator=None,
    )  # fmt: skip
    quantum = torch.load(path / "state.pt", weights_only=False)["quantum"]
    assert quantum["circuit"] == unet.circuit_metadata() and quantum["circuit"]["fingerprint"]
    (name, described), *_ = quantum["executors"].items()
    assert name.endswith(".ff") and described["name"] == "statevector" and "dtype" in described
    same, o1, s1, e1 = parts()
    load_checkpoint(path, unet=same, ema=e1, optimizer=o1, lr_scheduler=s1, generator=None)  # same circuit: loads
    # a local readout has exactly the same parameter shapes; only the fingerprint tells the circuits apart
    other, o2, s2, e2 = parts(readout="local")
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CircuitMismatchError, match="readout: checkpoint has 'ring', requested 'local'.*fingerprint"):
        load_checkpoint(path, unet=other, ema=e2, optimizer=o2, lr_scheduler=s2, generator=None)
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items())  # nothing was restored


def test_checkpoint_restores_the_fp16_grad_scaler_and_each_ranks_rng(tmp_path):
    """fp16 resume needs the GradScaler's scale and growth tracker; a multi-process resume needs each rank's RNG."""
    model, opt, sched, ema = _parts()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)
    for _ in range(3):  # growth every 2 finite steps: scale 2^11, tracker 1
        scaler.scale(model(torch.randn(4, 4)).pow(2).mean()).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    rngs = [ckpt.capture_rng(g) for g in gens]
    path = save_checkpoint(
        tmp_path, position=Position(3, 0, 3), cfg=make_preset("tiny"), unet=model, ema=ema, optimizer=opt,
        lr_scheduler=sched, generator=gens[0], scaler=scaler, rank_rngs=rngs,
    )  # fmt: skip
    m2, o2, s2, e2 = _parts(seed=3)
    fresh, gen1 = torch.amp.GradScaler("cpu", growth_interval=2), torch.Generator()
    load_checkpoint(
        path, unet=m2, ema=e2, optimizer=o2, lr_scheduler=s2, generator=gen1, scaler=fresh, process_index=1,
        num_processes=2,
    )  # fmt: skip
    assert fresh.state_dict() == scaler.state_dict() and fresh.get_scale() == 2.0**11
    assert torch.equal(torch.rand(3, generator=gen1), torch.rand(3, generator=gens[1]))  # rank 1's own stream
    with pytest.raises(ValueError, match="saved by 2 process"):
        load_checkpoint(path, unet=m2, ema=e2, optimizer=o2, lr_scheduler=s2, generator=gen1, num_processes=1)
    old = _save(tmp_path / "old", 1, model, opt, sched, ema, None)  # no scaler saved
    with pytest.raises(ValueError, match="no GradScaler state"):
        load_checkpoint(old, unet=m2, ema=e2, optimizer=o2, lr_scheduler=s2, generator=None, scaler=fresh)


def test_newest_loadable_skips_a_truncated_checkpoint(tmp_path):
    model, opt, sched, ema = _parts()
    for s in (1, 2):
        _save(tmp_path, s, model, opt, sched, ema, None)
    state = tmp_path / "step-00000002" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.warns(UserWarning, match=r"step-00000002/state.pt cannot be read.*resuming from step-00000001"):
        found = ckpt.newest_loadable(tmp_path)
    assert found["path"].name == "step-00000001"
    with pytest.raises(ckpt.CheckpointDamaged, match="state.pt"):
        ckpt.read_checkpoint(state.parent)
