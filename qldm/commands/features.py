"""``qldm features``: feature maps before and after each Q-FFN's circuit, and gradient flow, as figures and JSON.

The same figures and numbers as ``notebooks/feature_maps_and_gradient_flow.ipynb``: with ``--run`` or ``--checkpoint``
the maps of that trained model; without, a tiny ``QLDMUNet`` trained here for ``--train-steps`` steps on synthetic
latents (its numbers describe that tiny setting, not a full model), whose gradient flow is also recorded. Writes
``OUT/feature_maps.png``, ``OUT/features.json`` and, for the tiny model, ``OUT/gradient_flow.png``.
"""

from __future__ import annotations

import argparse

from qldm.commands.common import nonnegative_int, out_parent, positive_int, progress_parent


def parents() -> list[argparse.ArgumentParser]:
    return [out_parent(help="output folder (feature_maps.png, features.json, gradient_flow.png)"), progress_parent()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--run", help="a finished run directory (uses RUN/pipeline/unet)")
    src.add_argument("--checkpoint", help="a QLDMUNet save_pretrained folder (e.g. RUN/pipeline/unet)")
    tiny = parser.add_argument_group("without --run/--checkpoint: a tiny model trained here")
    tiny.add_argument("--n-qubits", type=positive_int, default=3, help="data qubits of the tiny model (default 3)")
    tiny.add_argument(
        "--train-steps", type=positive_int, default=4, help="training steps on synthetic latents (default 4)"
    )
    parser.add_argument("--timestep", type=nonnegative_int, default=500, help="diffusion step the maps are taken at")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the model, latent and text tokens")


def _check_timestep(timestep: int, cfg) -> None:
    if timestep >= cfg.num_train_timesteps:
        raise ValueError(
            f"--timestep must be < {cfg.num_train_timesteps} (the model's diffusion steps), got {timestep}"
        )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from analysis.features import feature_study, load_unet, plot_feature_maps
    from qldm.commands.common import reading

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails before any work
    if args.run or args.checkpoint:
        path = Path(args.run) / "pipeline" / "unet" if args.run else Path(args.checkpoint)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} holds no QLDMUNet (config.json); is the run finished?")
        with reading(path):
            model = load_unet(str(path))
        rec, source = None, str(path)
        _check_timestep(args.timestep, model.model_config)
    else:
        from analysis.gradflow import tiny_model, train_steps

        model, cfg = tiny_model(n_qubits=args.n_qubits, seed=args.seed)
        _check_timestep(args.timestep, cfg)
        rec = train_steps(model, cfg, steps=args.train_steps, seed=args.seed)
        model.eval()
        source = f"tiny QLDMUNet (n_qubits={args.n_qubits}), {args.train_steps} steps on synthetic latents"
    blocks, record = feature_study(model, timestep=args.timestep, seed=args.seed)
    plot_feature_maps(blocks, out / "feature_maps.png")
    record = {"model": source, **record}
    if rec is not None:
        rec.plot(out / "gradient_flow.png")
        record["gradient_flow"] = {"rows": rec.rows, "flags": rec.flags()}
    (out / "features.json").write_text(json.dumps(record, indent=2) + "\n")
    for row in record["high_frequency"]:
        print(f"{row['name']}: HF share A {row['hf_before']:.3f} -> B {row['hf_after']:.3f}")
    if rec is not None:
        print("\n".join(record["gradient_flow"]["flags"]) or "gradient flow: no flags")
    print(f"wrote {out / 'feature_maps.png'} and {out / 'features.json'}")
    return 0


def output_lock(args: argparse.Namespace):
    """One writer per ``--out``."""
    from qldm.train.runlock import RunLock

    return RunLock(args.out)
