"""``QuantumLayer``: a spec and an injected executor as an ``nn.Module`` with trainable circuit weights."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from circuits.spec import CircuitSpec
from qldm.quantum.executor import Executor

__all__ = ["QuantumLayer", "executor_lines"]


class QuantumLayer(nn.Module):
    """Expectation values of a parametrized circuit as a differentiable layer.

    ``forward`` maps ``x (..., n_inputs) -> (..., n_outputs)``: all leading dimensions are flattened into one batch
    that the executor runs (in chunks), so every token of a batch goes through the circuit together.

    Args:
        spec: The circuit.
        executor: The :class:`Executor` instance that runs the circuit (build one by name with
            :func:`qldm.quantum.make_executor`).
        init: Weight initialisation. ``"uniform"``: U[0, 2*pi), as the original implementation and the barren-plateau
            experiments. ``"small"``: N(0, init_scale^2), near-identity rotations that keep gradients and output spread
            large at any width.
        init_scale: Standard deviation for ``init="small"``.

    Attributes:
        weight: ``nn.Parameter`` of shape ``(spec.num_weights,)``, ordered like ``spec.weight_params``.

    Raises:
        TypeError: If ``executor`` is not an :class:`Executor` instance.
        ValueError: On an unknown init, or a spec the executor refuses (:meth:`Executor.check_spec`).
    """

    def __init__(
        self,
        spec: CircuitSpec,
        *,
        executor: Executor,
        init: Literal["uniform", "small"] = "uniform",
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.set_executor(executor)
        if init == "uniform":
            w = torch.rand(spec.num_weights) * 2 * math.pi
        elif init == "small":
            w = torch.randn(spec.num_weights) * init_scale
        else:
            raise ValueError(f"unknown init {init!r}; choose 'uniform' or 'small'")
        self.weight = nn.Parameter(w)

    def set_executor(self, executor: Executor) -> None:
        """Swap the executor (e.g. exact training, then hardware at sampling); the weights stay.

        Raises:
            TypeError: If ``executor`` is not an :class:`Executor` instance.
        """
        if not isinstance(executor, Executor):
            raise TypeError(
                f"QuantumLayer needs an Executor instance, got {executor!r}; build one with qldm.quantum.make_executor"
            )
        self.executor = executor
        self.program = executor.compile(self.spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., n_inputs) -> (..., n_outputs)``.

        Raises:
            ValueError: If the last dimension is not ``spec.num_inputs`` or ``x`` holds NaN/inf (the program checks).
        """
        lead = x.shape[:-1]
        # explicit B (not -1) so that circuits without inputs (n_in = 0) reshape too
        flat = x.reshape(lead.numel(), x.shape[-1] if x.dim() else 1)  # (B, n_in)
        # complex simulation stays in full precision, outside any autocast region
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self.program(flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat, self.weight)
        return out.to(x.dtype).reshape(*lead, self.spec.num_outputs)  # (..., n_out)

    def extra_repr(self) -> str:
        return f"spec={self.spec.name}, executor={self.executor!r}"

    # ------------------------------------------------------------------ bring your own circuit
    @classmethod
    def from_circuit(
        cls,
        circuit,
        *,
        input_params=None,
        weight_params=None,
        observables=None,
        input_gradients: bool = False,
        executor: Executor | None = None,
        initial_weights=None,
    ) -> QuantumLayer:
        """The fast exact layer of any circuit, a drop-in for ``TorchConnector(EstimatorQNN(...))``.

        Keywords and defaults are ``EstimatorQNN``'s (observables ``None``: ``Z`` on every qubit; ``input_gradients``
        ``False``: no gradient reaches the inputs) and shapes are ``TorchConnector``'s: ``(..., n_in) -> (..., n_out)``,
        ``(n_in,) -> (n_out,)``; ``None`` is the empty input of a circuit without inputs and a scalar is one feature.
        The circuit is lowered by :func:`circuits.custom.spec_from_circuit`.

        Args:
            circuit: Any ``QuantumCircuit`` (library classes, composite gates, final measurements allowed).
            input_params: Parameters fed by the input features, in feature order (``None``: no inputs).
            weight_params: Trainable parameters, in the order of ``weight`` (``None``: no weights).
            observables: ``None``, one ``SparsePauliOp`` (or anything it converts), or a sequence of them.
            input_gradients: Whether gradients flow to the inputs, as in ``EstimatorQNN``.
            executor: An exact executor instance; ``None`` gives a float64 ``StatevectorExecutor``, so results
                match the float64 reference estimator and small circuits cost little.
            initial_weights: Shape ``(num_weights,)``, as ``TorchConnector``'s; ``None`` uses ``init="uniform"``.

        Raises:
            ValueError: On an instruction that cannot be simulated (named), undeclared circuit parameters,
                observables of the wrong width or initial weights of the wrong shape.
        """
        from circuits.custom import spec_from_circuit

        spec = spec_from_circuit(
            circuit, input_params=input_params, weight_params=weight_params, observables=observables
        )
        return cls._estimator_layer(spec, input_gradients, executor, initial_weights)

    @classmethod
    def from_qnn(cls, qnn, *, executor: Executor | None = None, initial_weights=None) -> QuantumLayer:
        """The fast exact layer equivalent to an existing ``EstimatorQNN`` (its circuit, parameters, observables and
        ``input_gradients``); see :meth:`from_circuit` for the conventions. Copy ``TorchConnector(qnn).weight``
        into ``initial_weights`` to continue from its weights.

        The layer is exact, so it stands in only for a QNN whose own numbers are exact: an exact estimator (the
        default ``qiskit_machine_learning`` estimator, or ``StatevectorEstimator`` with ``default_precision=0``) and
        an exact gradient (the default parameter shift, or a real linear-combination gradient, on such an estimator).

        Raises:
            ValueError: If ``qnn`` is not an ``EstimatorQNN``; if its estimator samples shots, adds noise or runs
                elsewhere, or its gradient is not exact (naming ``from_circuit`` for the exact fast path); or as
                :meth:`from_circuit`.
        """
        from circuits.custom import spec_from_qnn

        spec = spec_from_qnn(qnn)
        _check_exact_qnn(qnn)
        return cls._estimator_layer(spec, qnn.input_gradients, executor, initial_weights)

    @classmethod
    def _estimator_layer(cls, spec, input_gradients, executor, initial_weights) -> QuantumLayer:
        if executor is None:
            from qldm.quantum.statevector import StatevectorExecutor

            executor = StatevectorExecutor(dtype=torch.float64)
        layer = cls(spec, executor=executor)
        w = layer.weight.detach() if initial_weights is None else torch.as_tensor(initial_weights).detach()
        if w.shape != (spec.num_weights,):
            raise ValueError(f"initial_weights need shape ({spec.num_weights},), got {tuple(w.shape)}")
        # weights in the executor's precision, so float64 layers are float64 end to end
        layer.weight = nn.Parameter(w.to(getattr(executor, "dtype", torch.float32)).clone())
        layer.input_gradients = bool(input_gradients)
        layer.register_forward_pre_hook(cls._estimatorqnn_inputs)
        return layer

    @staticmethod
    def _estimatorqnn_inputs(module: QuantumLayer, args: tuple) -> tuple:
        """Forward pre-hook: ``TorchConnector``'s input conventions (``None`` input, ``input_gradients``)."""
        x = args[0] if args else None
        if x is None:
            x = module.weight.new_zeros(0)  # (0,): TorchConnector's input for a circuit without inputs
        if x.dim() == 0:
            x = x.reshape(1)  # a scalar is one feature, as EstimatorQNN reads it
        if not module.input_gradients:
            x = x.detach()
        return (x, *args[1:])


def _is_exact_estimator(estimator, precision: float) -> bool:
    """Whether ``estimator`` returns exact expectation values when run at ``precision`` (as ``EstimatorQNN`` runs it).

    ``qiskit_machine_learning``'s estimator in exact mode ignores the precision; qiskit's ``StatevectorEstimator``
    draws Gaussian noise of that width unless it is 0. Any other estimator (Aer, a backend, a runtime service) is
    taken as not exact.
    """
    from qiskit.primitives import StatevectorEstimator

    try:
        from qiskit_machine_learning.primitives import QMLEstimator
    except ImportError:  # older qiskit-machine-learning: no exact-mode estimator of its own
        QMLEstimator = ()  # noqa: N806 - isinstance against nothing
    if isinstance(estimator, QMLEstimator):
        return bool(getattr(estimator, "_exact_mode", precision == 0))
    return type(estimator) is StatevectorEstimator and precision == 0


def _check_exact_qnn(qnn) -> None:
    """Refuse, in one line, a QNN whose estimator or gradient the exact layer would silently replace."""
    from qiskit_machine_learning.gradients import LinCombEstimatorGradient, ParamShiftEstimatorGradient

    precision = float(getattr(qnn, "default_precision", 0.0))
    fix = "use QuantumLayer.from_circuit(...) for the exact fast path, or TorchConnector(qnn) to keep it"
    if not _is_exact_estimator(qnn.estimator, precision):
        raise ValueError(
            f"from_qnn: the QNN's estimator ({type(qnn.estimator).__name__}, precision {precision:g}) is not exact, "
            f"and this layer would replace it by an exact statevector; {fix}"
        )
    gradient = qnn.gradient
    exact_rule = isinstance(gradient, ParamShiftEstimatorGradient) or (
        isinstance(gradient, LinCombEstimatorGradient) and str(gradient.derivative_type).endswith("REAL")
    )
    if not (exact_rule and _is_exact_estimator(getattr(gradient, "_estimator", None), precision)):
        raise ValueError(
            f"from_qnn: the QNN's gradient ({type(gradient).__name__}) is not an exact rule on an exact estimator, "
            f"and this layer computes exact gradients; {fix}"
        )


def executor_lines(module: nn.Module) -> list[str]:
    """One line per distinct executor among ``module``'s quantum layers: its description and the circuits it runs.

    A run logs these at its start, so which path ran each circuit is on record rather than implied by a preset.
    """
    runs: dict[str, list[str]] = {}
    for layer in module.modules():
        if isinstance(layer, QuantumLayer):
            runs.setdefault(repr(layer.executor), []).append(layer.spec.name)
    lines = []
    for executor, specs in runs.items():
        names = sorted(set(specs))
        lines.append(f"executor {executor} runs {len(specs)} circuit layer(s): {', '.join(names)}")
    return lines
