"""What ``qldm evaluate`` compares: evaluation prompts, reference real images, run labels, image sets on disk.

A set of generated images lives in a folder in the Hugging Face imagefolder layout: ``images/*.png`` plus
``metadata.jsonl`` (``file_name``, ``text`` = the prompt). ``qldm evaluate`` writes its samples that way, so a report
can be recomputed from the PNGs alone (``--images DIR``); the output of ``qldm sample`` (``images/pXX-YYY.png`` with
``prompts.txt``) is read as well.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = [
    "CONTROL_LABELS",
    "run_label",
    "load_run",
    "evaluation_prompts",
    "reference_images",
    "save_image_set",
    "load_image_set",
    "sample_images",
]

# Group labels of the quantum-vs-classical comparison (issue 3, section 5), in report order.
CONTROL_LABELS: tuple[str, ...] = (
    "quantum",
    "none (matched params)",
    "none",
    "mlp control",
    "no-circuit twin",
    "lambda=0 control",
    "shuffled control",
)


def run_label(model: Any) -> str:
    """The comparison group of a run from its ``ModelConfig`` (or its dict).

    ``quantum_blocks="none"`` is the classical control (matched parameter count when ``match_params``);
    ``qffn.branch="mlp"`` / ``"nocircuit"`` / ``"shuffled"`` are the circuit replaced by its classical twin (an
    n->n MLP of its size) / by the encoding's nonlinearity alone / outputs shuffled across tokens; a gate fixed
    at 0 (``qffn.gate_init=0``, ``qffn.gate_trainable=False``) is the lambda=0 control.
    """
    get = model.get if isinstance(model, dict) else lambda k, d=None: getattr(model, k, d)
    qffn = get("qffn") or {}
    qget = qffn.get if isinstance(qffn, dict) else lambda k, d=None: getattr(qffn, k, d)
    if get("quantum_blocks") == "none" and not get("quanv_patch", 0):
        return "none (matched params)" if get("match_params", False) else "none"
    branch = qget("branch", "quantum")
    if branch == "mlp":
        return "mlp control"
    if branch == "nocircuit":
        return "no-circuit twin"
    if branch == "shuffled":
        return "shuffled control"
    if not qget("gate_trainable", True) and float(qget("gate_init", 0.1)) == 0.0:
        return "lambda=0 control"
    return "quantum"


def evaluation_prompts(source: str, n: int) -> list[str]:
    """``n`` prompts balanced over hair colours (and styles for procedural data), in a fixed order.

    Procedural: colour ``i % 11`` with style ``(i // 11) % 4``, so every colour-and-style pair appears, including any a
    run held out of training. Real faces: ``"anime face, <colour> hair"``.

    Raises:
        ValueError: If ``n < 2``.
    """
    from qldm.data import HAIR_COLORS, HAIR_STYLES, make_caption

    if n < 2:
        raise ValueError(f"need at least 2 images per seed for FID, got n={n}")
    k = len(HAIR_COLORS)
    if str(source) == "procedural":
        return [
            make_caption({"hair_color": HAIR_COLORS[i % k], "hair_style": HAIR_STYLES[(i // k) % len(HAIR_STYLES)]})
            for i in range(n)
        ]
    return [f"anime face, {HAIR_COLORS[i % k]} hair" for i in range(n)]


def reference_images(source: str, prompts: list[str], *, image_size: int, seed: int) -> torch.Tensor:
    """Real images ``(n, 3, S, S)`` in [-1, 1] to compare generated ones with.

    Procedural data: faces rendered with exactly the prompted hair colour and style (eyes, skin and background
    drawn at random from ``seed``), so FID compares like with like. ``"anime-faces"``: ``n`` of the 1,000 held-out
    shared real faces that training never sees (``split="holdout"``), from a seeded permutation. Other folders: ``n``
    of their images. Real faces' hair colours follow the data, not the prompts.

    Raises:
        ValueError: On a missing folder or fewer images than prompts.
    """
    from qldm.data import BACKGROUND_COLORS, EYE_COLORS, SKIN_TONES, parse_prompt, render_faces

    n = len(prompts)
    rng = np.random.default_rng(seed)
    if str(source) == "procedural":
        attrs = []
        for p in prompts:
            a = parse_prompt(p)
            if "hair_color" not in a or "hair_style" not in a:
                raise ValueError(f"procedural reference faces need hair colour and style in every prompt: {p!r}")
            attrs.append(
                {
                    "hair_color": a["hair_color"],
                    "hair_style": a["hair_style"],
                    "eye_color": EYE_COLORS[rng.integers(len(EYE_COLORS))],
                    "skin": SKIN_TONES[rng.integers(len(SKIN_TONES))],
                    "background": BACKGROUND_COLORS[rng.integers(len(BACKGROUND_COLORS))],
                }
            )
        return render_faces(attrs, image_size, seed=seed).float() / 127.5 - 1.0
    if str(source) == "anime-faces":
        from qldm.data import build_dataset

        # the held-out split: faces no run ever trains on, so FID measures generalisation, not recall
        ds = build_dataset("anime-faces", image_size=image_size, split="holdout")
    else:
        from qldm.data import ImageFolderDataset

        root = Path(source)
        if not root.is_dir():
            raise ValueError(f"real image folder {str(root)!r} not found")
        ds = ImageFolderDataset(root, image_size=image_size, limit=max(4 * n, 2000))
    if len(ds) < n:
        raise ValueError(f"{source} has {len(ds)} reference images, fewer than the {n} needed")
    idx = rng.permutation(len(ds))[:n]
    return torch.stack([ds[int(i)]["pixel_values"] for i in idx])


def save_image_set(images: torch.Tensor, prompts: list[str], folder: str | Path, **meta: Any) -> Path:
    """Write ``(N, 3, H, W)`` images in [-1, 1] as ``folder/images/NNNN.png`` + ``metadata.jsonl``.

    ``meta`` (e.g. label, run, seed) goes to ``folder/set.json``. Returns the folder.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    lines = []
    for i, (img, prompt) in enumerate(zip(arr, prompts)):
        name = f"images/{i:04d}.png"
        Image.fromarray(img).save(folder / name)
        lines.append(json.dumps({"file_name": name, "text": prompt}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "set.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return folder


def _read(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)  # (H, W, 3)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0  # (3, H, W)


def load_image_set(folder: str | Path) -> tuple[torch.Tensor, list[str], dict[str, Any]]:
    """Read a set written by :func:`save_image_set` or by ``qldm sample``.

    Returns:
        ``(images (N, 3, H, W) in [-1, 1], prompts (N), meta)``; ``meta`` is ``set.json`` (or ``{}``).

    Raises:
        ValueError: If the folder holds neither layout, images differ in size, or a listed file is missing.
    """
    folder = Path(folder)
    meta = json.loads((folder / "set.json").read_text()) if (folder / "set.json").is_file() else {}
    if (folder / "metadata.jsonl").is_file():
        rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines() if line.strip()]
        pairs = [(folder / r["file_name"], str(r.get("text", ""))) for r in rows]
    elif (folder / "prompts.txt").is_file():  # qldm sample: images/pXX-YYY.png, prompts.txt "pXX: prompt"
        table = dict(re.findall(r"^p(\d+): (.*)$", (folder / "prompts.txt").read_text(), flags=re.M))
        files = sorted((folder / "images").glob("p*-*.png"))
        pairs = [(f, table[re.match(r"p(\d+)-", f.name).group(1)]) for f in files]  # type: ignore[union-attr]
    else:
        raise ValueError(f"{folder} has neither metadata.jsonl nor prompts.txt: not a set of generated images")
    if not pairs:
        raise ValueError(f"{folder} lists no images")
    missing = [str(p) for p, _ in pairs if not p.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} listed images are missing, e.g. {missing[0]}")
    images = [_read(p) for p, _ in pairs]
    if len({tuple(x.shape) for x in images}) != 1:
        raise ValueError(f"images in {folder} differ in size")
    return torch.stack(images), [t for _, t in pairs], meta


@torch.no_grad()
def sample_images(
    pipe: Any, prompts: list[str], *, seed: int, steps: int, guidance: float, batch_size: int = 64, **pipe_kwargs: Any
) -> torch.Tensor:
    """Generate one image per prompt: ``(N, 3, H, W)`` in [-1, 1].

    One ``torch.Generator`` seeded with ``seed`` drives all batches in order, so a (run, seed) pair always
    gives the same images. ``pipe_kwargs`` go to every pipeline call (e.g. ``on_step_begin``).
    """
    generator = torch.Generator().manual_seed(int(seed))
    out = []
    for i in range(0, len(prompts), batch_size):
        batch = pipe(
            prompts[i : i + batch_size],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generator,
            output_type="pt",
            **pipe_kwargs,
        ).images  # (b, 3, H, W) in [0, 1]
        out.append(torch.as_tensor(batch).float().cpu() * 2.0 - 1.0)
    return torch.cat(out)


def load_run(path: str | Path) -> tuple[Any, Any]:
    """``(pipeline, RunConfig)`` of a run folder (``RUN/pipeline``) or of a pipeline folder itself.

    Raises:
        FileNotFoundError: If the folder holds no exported pipeline.
    """
    from qldm.config import load_config
    from qldm.models import QLDMPipeline

    path = Path(path)
    pipe_dir = path if (path / "model_index.json").is_file() else path / "pipeline"
    if not (pipe_dir / "model_index.json").is_file():
        raise FileNotFoundError(f"{path} has no pipeline/model_index.json (is the run finished?)")
    cfg = load_config(pipe_dir if (pipe_dir / "run_config.json").is_file() else path)
    pipe = QLDMPipeline.from_pretrained(pipe_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe, cfg
