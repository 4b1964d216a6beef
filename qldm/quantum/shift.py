"""The parameter-shift rule, one general form for every gate family (forward evaluations only, no autograd).

For an expectation ``f(theta)`` whose frequencies in ``theta`` lie in ``{unit, 2 unit, ..., R unit}``, the general
rule of Wierichs, Izaac, Wang & Lin (Quantum 6, 677, 2022), with ``x_mu = (2 mu - 1) pi / (2R)``, is

    f'(theta) = sum_{mu=1..2R}  unit (-1)^(mu-1) / (4 R sin^2(x_mu / 2))  f(theta + x_mu / unit),

exact, not a finite difference. ``R = 1, unit = 1`` is the two-term rule of Pauli rotations ``exp(-i theta P / 2)``
(Mitarai et al., PRA 98, 032309; Schuld et al., PRA 99, 032331); ``R = 2, unit = 1/2`` is the four-term rule of
controlled rotations, frequencies ``{1/2, 1}`` (Anselmetti et al., NJP 23, 113010, 2021), which also covers
Pauli rotations.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["shift_rule", "shift_derivative", "PAULI_SHIFT", "CONTROLLED_SHIFT"]

ShiftRule = tuple[tuple[float, float], ...]


def shift_rule(num_frequencies: int, unit: float = 1.0) -> ShiftRule:
    """``(shift, coefficient)`` pairs of the general rule (module docstring), shifts wrapped into one period.

    Args:
        num_frequencies: R, the number of equidistant frequencies.
        unit: Their spacing (and smallest frequency).

    Returns:
        ``2R`` pairs, ordered by ``|shift|``, the positive shift first.

    Raises:
        ValueError: If ``num_frequencies < 1`` or ``unit <= 0``.
    """
    if num_frequencies < 1 or not unit > 0:
        raise ValueError(f"need num_frequencies >= 1 and unit > 0, got {num_frequencies}, {unit}")
    r = num_frequencies
    terms = []
    for mu in range(1, r + 1):
        # x_mu and x_{2R+1-mu} = 2 pi - x_mu (i.e. -x_mu, one period down) have opposite coefficients: build the
        # pair from one value so that the rule is exactly antisymmetric
        x = (2 * mu - 1) * math.pi / (2 * r)
        cos_x = math.sin((r - 2 * mu + 1) * math.pi / (2 * r))  # cos x as sin(pi/2 - x): exactly 0 at x = pi/2
        coeff = unit * (-1) ** (mu - 1) / (2 * r * (1 - cos_x))  # 4 R sin^2(x/2) = 2 R (1 - cos x)
        terms += [(x / unit, coeff), (-x / unit, -coeff)]
    return tuple(sorted(terms, key=lambda t: (abs(t[0]), t[0] < 0)))


#: Two-term rule, exact for Pauli rotations: ``((pi/2, 1/2), (-pi/2, -1/2))``.
PAULI_SHIFT: ShiftRule = shift_rule(1)
#: Four-term rule, exact for Pauli and controlled rotations (frequencies within {1/2, 1}).
CONTROLLED_SHIFT: ShiftRule = shift_rule(2, 0.5)


def shift_derivative(
    fn: Callable[[torch.Tensor], torch.Tensor], angles: torch.Tensor, slot: int, rule: ShiftRule = CONTROLLED_SHIFT
) -> torch.Tensor:
    """``d fn / d angles[:, slot]`` by a shift rule, with forward passes only (memory of one forward).

    Args:
        fn: ``angles (B, P) -> (B,)``, whose dependence on each angle has the frequencies ``rule`` is exact for.
        angles: ``(B, P)``.
        slot: The angle to differentiate.
        rule: ``(shift, coefficient)`` pairs from :func:`shift_rule`.

    Returns:
        ``(B,)`` exact derivatives.
    """
    out = torch.zeros(angles.shape[0], dtype=angles.dtype)
    with torch.no_grad():
        for shift, coeff in rule:
            moved = angles.clone()
            moved[:, slot] += shift
            out += coeff * fn(moved)
    return out
