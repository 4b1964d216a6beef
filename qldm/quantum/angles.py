"""Gate angles as torch functions of (inputs, weights), compiled from Qiskit parameter expressions.

Most angles are a bare parameter (a weight, or an input); they become one index gather. The rest (``atan(x[i])``,
linear combinations left by transpilation) are lambdified with sympy over *their own* parameters only, and
identical expressions share one compiled function, so compile time stays linear in the circuit size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy
import torch
from qiskit.circuit import Parameter, ParameterExpression

from circuits.spec import CircuitSpec

__all__ = ["angle_function"]

_TORCH_FUNCS: dict[str, Callable | float] = {
    "atan": torch.atan, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp,
    "log": torch.log, "sqrt": torch.sqrt, "asin": torch.asin, "acos": torch.acos, "Abs": torch.abs,
    "sign": torch.sign, "pi": float(np.pi), "E": float(np.e),
}  # fmt: skip


def _bare_parameter(expr: ParameterExpression) -> Parameter | None:
    params = expr.parameters
    if len(params) != 1:
        return None
    (p,) = params
    return p if expr == p else None


def angle_function(
    exprs: Sequence[ParameterExpression | float], spec: CircuitSpec
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Compile gate-angle expressions into ``f(inputs (B, n_in), weights (n_w,)) -> (B, len(exprs))``.

    Args:
        exprs: One entry per gate parameter: a ``ParameterExpression`` over the spec's parameters, or a float.
        spec: The spec whose ``input_params`` and ``weight_params`` define the argument order.

    Raises:
        ValueError: If an expression uses a parameter the spec does not declare.
    """
    params = list(spec.input_params) + list(spec.weight_params)
    position = {p: i for i, p in enumerate(params)}
    gather: list[int] = []  # column j of the output -> index into [inputs, weights, computed...]
    computed: list[tuple[Callable, list[int]]] = []
    cache: dict[str, int] = {}
    constants: list[float] = []
    for e in exprs:
        if not isinstance(e, ParameterExpression):
            constants.append(float(e))
            gather.append(-len(constants))  # negative: a constant
            continue
        unknown = [p.name for p in e.parameters if p not in position]
        if unknown:
            raise ValueError(f"{spec.name}: angle {e} uses undeclared parameter(s) {unknown}")
        bare = _bare_parameter(e)
        if bare is not None:
            gather.append(position[bare])
            continue
        key = str(e)
        if key not in cache:
            own = sorted(e.parameters, key=lambda p: position[p])
            symbols = [sympy.Symbol(f"a{i}") for i in range(len(own))]
            sym = e.sympify().subs({sympy.Symbol(p.name): s for p, s in zip(own, symbols)})
            fn = sympy.lambdify(symbols, sym, modules=[_TORCH_FUNCS, "math"])
            computed.append((fn, [position[p] for p in own]))
            cache[key] = len(params) + len(computed) - 1
        gather.append(cache[key])
    n_in = spec.num_inputs
    index = torch.tensor([g if g >= 0 else 0 for g in gather], dtype=torch.long)
    is_const = torch.tensor([g < 0 for g in gather])
    const_vals = torch.tensor([constants[-g - 1] if g < 0 else 0.0 for g in gather], dtype=torch.float64)

    def angle_fn(inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        b = inputs.shape[0]
        base = [inputs[:, :n_in], weights.reshape(1, -1).expand(b, -1)]  # (B, n_in), (B, n_w)
        cols = torch.cat(base, dim=1)  # (B, P)
        if computed:
            extra = []
            for fn, idx in computed:
                v = fn(*[cols[:, i] for i in idx])
                extra.append(v if torch.is_tensor(v) else torch.full((b,), float(v), dtype=cols.dtype))
            cols = torch.cat([cols, torch.stack(extra, dim=1)], dim=1)  # (B, P + C)
        if not gather:
            return inputs.new_zeros((b, 0))
        out = cols[:, index.to(cols.device)]  # (B, A)
        if bool(is_const.any()):
            out = torch.where(is_const.to(cols.device), const_vals.to(cols), out)
        return out

    return angle_fn
