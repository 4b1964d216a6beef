"""What a resumed run may change: the length of the run and how often it logs or saves, nothing that shapes it."""

from __future__ import annotations

from typing import Any

from qldm.config import RunConfig, config_to_dict

__all__ = ["RESUMABLE_KEYS", "check_resume_config"]

# keys that leave every step's computation unchanged: how long to train and how often to log, save and sample
RESUMABLE_KEYS: frozenset[str] = frozenset(
    {
        "train.epochs",
        "train.max_steps",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.log_every",
        "train.sample_every",
    }
)
# written by the run itself: the measured latent scale (stage 1)
_DERIVED: frozenset[str] = frozenset({"model.latent_scale"})


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume_config(saved: RunConfig, cfg: RunConfig) -> None:
    """Refuse a resume whose config differs from the checkpoint's in anything but :data:`RESUMABLE_KEYS`.

    Args:
        saved: The config stored in the checkpoint.
        cfg: The config the resumed run was given (after ``--set`` overrides and the precision fallback).

    Raises:
        ValueError: Naming the changed keys (old -> new) and the keys that may change.
    """
    old, new = _flat(config_to_dict(saved)), _flat(config_to_dict(cfg))
    free = RESUMABLE_KEYS | _DERIVED
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in free)
    if changed:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise ValueError(
            f"--resume cannot change {shown}{more}: only {', '.join(sorted(RESUMABLE_KEYS))} may change; "
            "start a new --out for another config"
        )
