"""``qldm sample``: generate images from prompts with a trained run (EMA weights), as a PNG grid plus single PNGs.

Images are made one at a time and each PNG is written as soon as it is done (image ``k``, prompt by prompt, starts
from the noise of seed ``--seed + k``), so an interrupted run keeps what it made. With ``--quantum-backend`` the
hardware results cache and job journal live in ``OUT/hardware-cache`` by default: each job's results are kept as the
job finishes, and rerunning the same command collects or reuses them instead of paying again.
"""

from __future__ import annotations

import argparse

from qldm.commands.common import (
    backend_name,
    check_image_memory,
    nonnegative_float,
    nonnegative_int,
    out_parent,
    positive_int,
    progress_parent,
)


def parents() -> list[argparse.ArgumentParser]:
    return [out_parent(help="output folder (grid.png, images/*.png)"), progress_parent()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run directory (uses RUN/pipeline, the final EMA export)")
    src.add_argument("--checkpoint", help="a saved pipeline folder or a training checkpoint (checkpoints/step-*)")
    parser.add_argument("--prompt", action="append", default=[], help="prompt (repeatable; default: the run's grid)")
    parser.add_argument("--n", type=positive_int, default=4, help="images per prompt (default 4)")
    parser.add_argument("--steps", type=positive_int, help="denoising steps (default: the run's sample.steps)")
    parser.add_argument(
        "--guidance", type=nonnegative_float, help="classifier-free guidance scale, >= 0, 1 = off (default: the run's)"
    )
    parser.add_argument(
        "--scheduler",
        help="sampler: ddim | dpm++ | ddpm, or the class name of any diffusers scheduler compatible with the model "
        "(its scheduler's .compatibles, e.g. EulerDiscreteScheduler) (default: the run's)",
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="image k (prompt by prompt) starts from seed SEED+k"
    )
    parser.add_argument("--quantum-executor", help="executor for the Q-FFN circuits (statevector, tensornet, ...)")
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model config field the checkpoint's circuit must have (model.qffn.n_qubits, model.qffn.n_layers, "
        "model.qffn.ancillas, ...; repeatable); "
        "a checkpoint with a different circuit is an error",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse a prompt longer than the text encoder reads (default: warn once and cut it)",
    )
    hw = parser.add_argument_group("hardware (runs chosen Q-FFN blocks on an IBM backend; see `qldm hardware`)")
    hw.add_argument("--quantum-backend", help="aer | aer-noise:<FakeName> | fake:<FakeName> | ibm:<device>")
    hw.add_argument(
        "--hardware-blocks", choices=["bottleneck", "all"], default="bottleneck", help="Q-FFN blocks run on the backend"
    )
    hw.add_argument("--hardware-steps", default="last:5", help="last:K | all | i,j,... (denoising step indices)")
    hw.add_argument("--shots", type=positive_int, default=1024, help="shots per circuit evaluation (default 1024)")
    hw.add_argument(
        "--hardware-emulate",
        action="store_true",
        help="calibrated fast emulator of the backend instead of jobs",
    )
    cache = hw.add_mutually_exclusive_group()
    cache.add_argument(
        "--hardware-cache",
        help="folder of the hardware results cache and job journal (default OUT/hardware-cache): a rerun reuses "
        "finished jobs' results and collects submitted ibm: jobs instead of paying for them again",
    )
    cache.add_argument("--no-hardware-cache", action="store_true", help="keep no hardware results (pay again)")
    hw.add_argument("--yes", action="store_true", help="confirm submitting to a real device")


def _load_pipeline(args: argparse.Namespace):
    """``(pipeline, run config)`` from ``--run`` or ``--checkpoint``."""
    from pathlib import Path

    from qldm.config import load_config
    from qldm.models import QLDMPipeline

    path = Path(args.run) / "pipeline" if args.run else Path(args.checkpoint)
    if args.run and not path.is_dir():
        raise FileNotFoundError(f"{args.run} has no pipeline/ (is the run finished? use --checkpoint for a step)")
    if (path / "model_index.json").is_file():
        return QLDMPipeline.from_pretrained(path), load_config(path)
    if (path / "ema.safetensors").is_file():  # a training checkpoint: rebuild from the run's VAE + EMA weights
        from diffusers import AutoencoderKL
        from safetensors.torch import load_file

        from qldm.models import build_text_encoder
        from qldm.train.components import build_unet, make_pipeline

        cfg = load_config(path)
        run_dir = path.parent.parent
        vae = AutoencoderKL.from_pretrained(run_dir / "vae").eval()
        unet = build_unet(cfg)
        missing = unet.load_state_dict(load_file(str(path / "ema.safetensors")), strict=False).missing_keys
        if any(not k.endswith("gate") for k in missing):  # EMA holds parameters only (buffers come from unet)
            unet.load_state_dict(load_file(str(path / "unet.safetensors")))
            unet.load_state_dict(load_file(str(path / "ema.safetensors")), strict=False)
        return make_pipeline(cfg, vae=vae, text_encoder=build_text_encoder(cfg.model), unet=unet.eval()), cfg
    raise FileNotFoundError(
        f"{path} is neither a pipeline folder (model_index.json) nor a checkpoint (ema.safetensors)"
    )


def _scheduler(name: str, pipe, cfg):
    """The sampler ``name``: one of the project's tuned samplers, or a compatible diffusers class by name.

    A class from the pipeline scheduler's ``compatibles`` starts from that scheduler's config (the trained process:
    betas, prediction type), with timesteps spaced ``"trailing"`` like the project's own samplers.

    Raises:
        ValueError: If ``name`` is neither, listing the compatible class names.
    """
    from qldm.models import make_sample_scheduler
    from qldm.models.diffusion import SAMPLERS

    if name in SAMPLERS:
        return make_sample_scheduler(name, cfg.model)
    compatible = {cls.__name__: cls for cls in pipe.scheduler.compatibles}
    if name not in compatible:
        raise ValueError(
            f"--scheduler {name!r} is neither one of {list(SAMPLERS)} nor a scheduler compatible with this model: "
            f"{', '.join(sorted(compatible))}"
        )
    return compatible[name].from_config(pipe.scheduler.config, timestep_spacing="trailing")


def _write_settings(path, args: argparse.Namespace, cfg, *, steps: int, guidance: float) -> None:
    """How the images were made, as ``set.json``: ``qldm evaluate --images`` reads its report header from it."""
    import json
    from pathlib import Path

    from qldm.eval.sources import run_label

    source = Path(args.run or args.checkpoint)
    settings = {
        "command": "qldm sample",
        "run": source.resolve().name,
        "label": run_label(cfg.model),
        "seed": args.seed,
        "n": args.n,
        "steps": steps,
        "guidance": guidance,
        "scheduler": args.scheduler or cfg.sample.scheduler,
        "source": cfg.data.source,
        "image_size": cfg.data.image_size,
        "holdout": list(cfg.data.holdout),
        "quantum_executor": args.quantum_executor,
        "quantum_backend": args.quantum_backend,
    }
    if args.quantum_backend:
        settings.update(
            hardware_blocks=args.hardware_blocks,
            hardware_steps=args.hardware_steps,
            shots=args.shots,
            hardware_emulate=args.hardware_emulate,
        )
    path.write_text(json.dumps(settings, indent=2) + "\n")


def _check_prompt_lengths(text_encoder, prompts: list[str], *, strict: bool) -> None:
    """Say once, on one stderr line, which prompts the text encoder cuts (it reads ``max_length`` tokens, EOS
    included), with their token counts; two prompts that differ only after the cut would give the same images.

    Raises:
        ValueError: Under ``strict``, instead of the warning.
    """
    import sys

    limit = text_encoder.max_length
    counts = [len(text_encoder.tokenizer(p)["input_ids"]) for p in prompts]
    long = [f"p{i:02d} ({n} tokens)" for i, n in enumerate(counts) if n > limit]
    if not long:
        return
    message = (
        f"{len(long)} prompt(s) longer than the text encoder's {limit} tokens: {', '.join(long)}; the tokens past "
        f"{limit} are ignored"
    )
    if strict:
        raise ValueError(f"{message} (--strict)")
    print(f"qldm sample: warning: {message} (--strict refuses them)", file=sys.stderr)


def _save_png(image, path) -> None:
    """``image (H, W, 3)`` in [0, 1] as a PNG, atomically (a crash leaves no torn file under the final name)."""
    import os

    import numpy as np
    from PIL import Image

    tmp = path.with_name(f".{path.stem}.tmp.png")
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(tmp)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from qldm.commands.common import reading
    from qldm.config import apply_overrides
    from qldm.models import check_circuit_compatible
    from qldm.train.progress import save_grid

    if args.quantum_backend:
        backend_name(args.quantum_backend)
    if any(not p.strip() for p in args.prompt):
        raise ValueError("--prompt must not be empty")
    source = Path(args.run) / "pipeline" if args.run else Path(args.checkpoint)
    with reading(source):
        pipe, cfg = _load_pipeline(args)
    pipe.set_progress_bar_config(disable=args.no_progress)
    if args.expect:
        requested = apply_overrides(cfg, list(args.expect)).model
        check_circuit_compatible(cfg.model.circuit_metadata(), requested.circuit_metadata())
    if args.scheduler:
        pipe.scheduler = _scheduler(args.scheduler, pipe, cfg)
    if args.quantum_executor:
        pipe.unet.set_quantum_executor(args.quantum_executor)
    prompts = args.prompt or list(cfg.sample.prompts)
    _check_prompt_lengths(pipe.text_encoder, prompts, strict=args.strict)
    # every image stays in memory for the grid, then once more in the stacked grid array
    what = f"--n {args.n} x {len(prompts)} prompt(s)"
    check_image_memory(len(prompts) * args.n, cfg.data.image_size, copies=2, what=what)
    steps = cfg.sample.steps if args.steps is None else args.steps
    guidance = cfg.sample.guidance if args.guidance is None else args.guidance
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)  # before any paid job: an unwritable --out fails first
    (out / "prompts.txt").write_text("".join(f"p{i:02d}: {p}\n" for i, p in enumerate(prompts)))
    _write_settings(out / "set.json", args, cfg, steps=steps, guidance=guidance)
    kwargs = {}
    if args.quantum_backend:
        try:
            from hardware.sampling import hardware_step_callback
        except ImportError as err:
            raise ValueError(f"--quantum-backend needs the hardware package's sampling module ({err})") from None
        cache = None if args.no_hardware_cache else Path(args.hardware_cache or out / "hardware-cache")
        kwargs["on_step_begin"] = hardware_step_callback(
            pipe.unet,
            backend=args.quantum_backend,
            blocks=args.hardware_blocks,
            steps=args.hardware_steps,
            num_inference_steps=steps,
            confirm=args.yes,
            shots=args.shots,
            emulate=args.hardware_emulate,
            cache_dir=cache,
        )
    images = []
    for k in range(len(prompts) * args.n):
        p, j = divmod(k, args.n)
        torch.manual_seed(args.seed + k)  # global RNG (sampled branches, shuffled control): a rerun repeats it
        with torch.no_grad():
            image = pipe(
                prompts[p],
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator().manual_seed(args.seed + k),
                output_type="np",
                **kwargs,
            ).images[0]  # (H, W, 3) in [0, 1]
        _save_png(image, out / "images" / f"p{p:02d}-{j:03d}.png")  # now: an interrupted run keeps it
        images.append(image)
    grid = save_grid(np.stack(images), out / "grid.png", nrow=args.n)
    print(f"{len(images)} images -> {out / 'images'}; grid {grid} (rows = prompts, see prompts.txt)")
    return 0


def output_lock(args: argparse.Namespace):
    """One writer per ``--out``: two samplings into one folder would pay for hardware jobs twice."""
    from qldm.train.runlock import RunLock

    return RunLock(args.out)
