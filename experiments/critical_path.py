"""The critical-path study: designs where the circuit is the only way through its slot, each against its twins.

Every design is one set of ``--set`` overrides on the ``anime64`` recipe (same data, stage-1 VAE, epochs, held-out
split). Each is trained three ways, switched by ``model.qffn.branch``:

- ``q``: the circuit;
- ``c``: the classical twin, an n -> n tanh MLP with as many parameters as the circuit, in the same place;
- ``n``: the no-circuit twin, the same slot with the circuit removed (``atan`` alone).

A run is named design letter + twin letter + training seed (``Fq0``, ``Fc0``, ``Fn0``). Quantum runs are also
ablated at inference (token mean, shuffle) and their circuit outputs measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from experiments.runs import RunJob

__all__ = ["DESIGNS", "TWINS", "job"]

# Small-angle initialisation keeps 16-qubit outputs spread across tokens (at uniform init they concentrate).
DESIGNS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        "F": (
            "quantum-only FFN, every transformer block",
            ("model.qffn.mode=quantum-only", "model.quantum_blocks=all", "model.qffn.weight_init=small"),
        ),
        "V": (
            "quanvolution (2x2 latent patches) after conv_in",
            ("model.quantum_blocks=none", "model.quanv_patch=2", "model.qffn.weight_init=small"),
        ),
        "B": (
            "quantum-only FFN, bottleneck only",
            ("model.qffn.mode=quantum-only", "model.quantum_blocks=bottleneck", "model.qffn.weight_init=small"),
        ),
    }
)
TWINS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"q": ("quantum", "quantum"), "c": ("classical twin", "mlp"), "n": ("no-circuit twin", "nocircuit")}
)


def job(name: str, *, vae: str) -> RunJob:
    """The :class:`RunJob` a run name describes (``Fq0``: design F, quantum, training seed 0).

    Raises:
        ValueError: On a name that is not design + twin + seed.
    """
    design, twin, seed = name[:1], name[1:2], name[2:]
    if design not in DESIGNS or twin not in TWINS or not seed.isdigit():
        raise ValueError(f"run name {name!r} must be design {sorted(DESIGNS)} + twin {sorted(TWINS)} + seed")
    sets = (f"train.seed={seed}", f"train.vae_pretrained={vae}", *DESIGNS[design][1])
    sets += (f"model.qffn.branch={TWINS[twin][1]}",)
    return RunJob(name=name, sets=sets, has_circuit=twin == "q")
