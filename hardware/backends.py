"""Backends by name: exact/shot Aer, Aer with a device noise model, runtime local testing mode, IBM devices.

One string names a backend everywhere (configs, every CLI command, :func:`hardware.sampling.attach_hardware`), checked
by :func:`parse_backend_name`; a bare fake name (``FakeTorino``) is refused with a hint to the prefixed forms:

- ``aer``: Aer without noise; exact expectation values, or shot-sampled when the executor gets ``shots``.
- ``aer-noise:<FakeName>``: Aer with ``NoiseModel.from_backend`` of a ``qiskit_ibm_runtime.fake_provider``
  backend (its coupling map, basis gates and calibrated errors), shot-sampled.
- ``fake:<FakeName>``: qiskit-ibm-runtime local testing mode with that fake backend: the same runtime primitive
  code path as a real device, simulated by Aer with the snapshot's noise, one noisy trajectory per shot.
- ``ibm:<device>``: a real device through ``QiskitRuntimeService``. Credentials come only from the environment
  (``QISKIT_IBM_TOKEN``, ``QISKIT_IBM_CHANNEL``, ``QISKIT_IBM_INSTANCE``) or a saved Qiskit account; the token
  is handed to the service and never printed, logged or written anywhere.

Qiskit's own objects work too (:func:`resolve_backend_object`), as qiskit-ibm-runtime's ``EstimatorV2(mode=...)``
takes them: a fake backend instance, an ``IBMBackend``, a noiseless ``AerSimulator``, or a ``Session``/``Batch``.

Nothing here builds a backend or a service at import time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "BackendError",
    "CredentialsError",
    "ResolvedBackend",
    "fake_backend_names",
    "parse_backend_name",
    "resolve_backend",
    "resolve_backend_object",
    "saved_account_file",
]

Kind = Literal["aer", "aer-noise", "fake", "ibm"]
VALID_FORMS = ("aer", "aer-noise:<FakeName>", "fake:<FakeName>", "ibm:<device>")


class BackendError(ValueError):
    """An unknown or unusable backend name."""


class CredentialsError(BackendError):
    """No IBM Quantum credentials in the environment or a saved account."""


@dataclass(frozen=True, eq=False)
class ResolvedBackend:
    """A backend name resolved to objects.

    Attributes:
        name: The string it was resolved from, e.g. ``"fake:FakeManilaV2"`` (safe to log: holds no secret).
        kind: ``"aer"``, ``"aer-noise"``, ``"fake"`` or ``"ibm"``.
        backend: The ``BackendV2`` that circuits are transpiled for and, except for ``aer-noise``, run on. For
            ``aer`` it is a noiseless ``AerSimulator``; for ``aer-noise`` it is the fake device (its target
            gives coupling map, basis and calibration), and ``simulator`` runs the circuits.
        simulator: For ``aer``/``aer-noise``: the ``AerSimulator`` that runs circuits (with the device noise model).
        service: For ``ibm``: the ``QiskitRuntimeService`` (needed for Session/Batch).
    """

    name: str
    kind: Kind
    backend: Any
    simulator: Any = None
    service: Any = None

    @property
    def has_calibration(self) -> bool:
        """Whether the target carries gate/readout errors (all kinds except noiseless ``aer``)."""
        return self.kind != "aer"

    @property
    def num_qubits(self) -> int:
        return int(self.backend.num_qubits)


def fake_backend_names() -> list[str]:
    """Names of the fake backends that ``qiskit_ibm_runtime.fake_provider`` ships (IBM device snapshots)."""
    import qiskit_ibm_runtime.fake_provider as fp

    skip = {"FakeProviderForBackendV2", "FakeProvider", "FakeFractionalBackend"}
    return sorted(n for n in dir(fp) if n.startswith("Fake") and n not in skip and isinstance(getattr(fp, n), type))


def _fake_backend(fake_name: str) -> Any:
    """A new instance of a fake backend whose name :func:`parse_backend_name` has checked."""
    import qiskit_ibm_runtime.fake_provider as fp

    return getattr(fp, fake_name)()


def saved_account_file() -> Path:
    """Where a saved Qiskit account is looked up: ``$QISKIT_IBM_ACCOUNT_FILE`` or ``~/.qiskit/qiskit-ibm.json``.

    Expanded at call time (not import time), so tests can point ``HOME`` at an empty directory.
    """
    env = os.environ.get("QISKIT_IBM_ACCOUNT_FILE")
    return Path(env) if env else Path(os.path.expanduser("~")) / ".qiskit" / "qiskit-ibm.json"


def _service() -> Any:
    """A ``QiskitRuntimeService`` from environment variables or the saved account; never echoes the token."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    token = os.environ.get("QISKIT_IBM_TOKEN")
    account = saved_account_file()
    if not token and not account.is_file():
        raise CredentialsError(
            "no IBM Quantum credentials: set QISKIT_IBM_TOKEN (and QISKIT_IBM_CHANNEL/QISKIT_IBM_INSTANCE), "
            f"or save an account with QiskitRuntimeService.save_account() (looked for {account})"
        )
    runtime_log = logging.getLogger("qiskit_ibm_runtime")
    level = runtime_log.level
    runtime_log.setLevel(logging.ERROR)  # its "loading account" warning would be a second line before ours
    try:
        if token:
            kwargs: dict[str, Any] = {"token": token}
            if os.environ.get("QISKIT_IBM_CHANNEL"):
                kwargs["channel"] = os.environ["QISKIT_IBM_CHANNEL"]
            if os.environ.get("QISKIT_IBM_INSTANCE"):
                kwargs["instance"] = os.environ["QISKIT_IBM_INSTANCE"]
            return QiskitRuntimeService(**kwargs)
        return QiskitRuntimeService(filename=str(account))
    except Exception as err:  # noqa: BLE001 - any service failure becomes one clear line
        # The message of the original error is not repeated: some service errors echo request headers. Offline,
        # the service cannot tell a dropped network from a rejected token, so the line names both.
        raise CredentialsError(
            f"could not open QiskitRuntimeService ({type(err).__name__}): no network connection to IBM Quantum, "
            "or the credentials were rejected; check the network and QISKIT_IBM_TOKEN/QISKIT_IBM_CHANNEL/"
            "QISKIT_IBM_INSTANCE or the saved account"
        ) from None
    finally:
        runtime_log.setLevel(level)


def parse_backend_name(name: str, *, kinds: tuple[str, ...] = ("aer", "aer-noise", "fake", "ibm")) -> tuple[str, str]:
    """Check a backend name's form without building anything: the one parser every command and executor uses.

    Args:
        name: ``"aer"``, ``"aer-noise:<FakeName>"``, ``"fake:<FakeName>"`` or ``"ibm:<device>"``.
        kinds: The kinds the caller accepts (e.g. only the calibrated fake kinds for an emulator check).

    Returns:
        ``(kind, argument)``, e.g. ``("aer-noise", "FakeTorino")``; the argument is ``""`` for ``aer``.

    Raises:
        BackendError: On an unknown form, a kind outside ``kinds``, an unknown fake backend, or a bare fake name
            (``"FakeTorino"``), whose message names the prefixed forms to use instead.
    """
    if not isinstance(name, str) or not name:
        raise BackendError(f"backend name must be a non-empty string, got {name!r}; valid forms: {VALID_FORMS}")
    kind, _, arg = name.partition(":")
    if not arg and kind.startswith("Fake"):
        raise BackendError(
            f"backend {name!r} has no kind: write aer-noise:{name} (Aer with its noise model) or fake:{name} "
            "(runtime local testing mode)"
        )
    if (kind == "aer") != (not arg) or kind not in ("aer", "aer-noise", "fake", "ibm"):
        raise BackendError(
            f"unknown backend {name!r}; valid forms: {', '.join(VALID_FORMS)}; "
            f"fake backends: {', '.join(fake_backend_names())}"
        )
    if kind not in kinds:
        forms = ", ".join(f for f in VALID_FORMS if f.split(":")[0] in kinds)
        raise BackendError(f"backend {name!r} is not usable here; use one of: {forms}")
    if kind in ("aer-noise", "fake") and arg not in fake_backend_names():
        raise BackendError(f"unknown fake backend {arg!r} in {name!r}; available: {', '.join(fake_backend_names())}")
    return kind, arg


def resolve_backend(name: str) -> ResolvedBackend:
    """Turn a backend string into backend objects.

    Args:
        name: ``"aer"``, ``"aer-noise:<FakeName>"``, ``"fake:<FakeName>"`` or ``"ibm:<device>"``.

    Returns:
        A :class:`ResolvedBackend`.

    Raises:
        BackendError: On an unknown form or fake-backend name (see :func:`parse_backend_name`).
        CredentialsError: For ``ibm:`` without credentials, or when the service rejects them.
    """
    kind, arg = parse_backend_name(name)
    if kind == "aer":
        from qiskit_aer import AerSimulator

        sim = AerSimulator()
        return ResolvedBackend(name=name, kind="aer", backend=sim, simulator=sim)
    if kind == "aer-noise":
        from qiskit_aer import AerSimulator
        from qiskit_aer.noise import NoiseModel

        device = _fake_backend(arg)
        sim = AerSimulator.from_backend(device, noise_model=NoiseModel.from_backend(device))
        return ResolvedBackend(name=name, kind="aer-noise", backend=device, simulator=sim)
    if kind == "fake":
        return ResolvedBackend(name=name, kind="fake", backend=_fake_backend(arg))
    service = _service()
    try:
        device = service.backend(arg)
    except Exception as err:  # noqa: BLE001 - the service's own error may echo request details
        raise BackendError(f"IBM backend {arg!r} is not available to this account ({type(err).__name__})") from None
    return ResolvedBackend(name=name, kind="ibm", backend=device, service=service)


def resolve_backend_object(obj: Any) -> ResolvedBackend:
    """A :class:`ResolvedBackend` for a Qiskit object instead of a name.

    Args:
        obj: A ``qiskit_ibm_runtime`` fake backend (local testing mode, as ``fake:<Name>``), an ``IBMBackend`` (as
            ``ibm:<device>``, with its service), an ``AerSimulator`` without a noise model (as ``aer``), or a
            ``Session``/``Batch`` (its backend).

    Raises:
        BackendError: For any other object, or an ``AerSimulator`` with a noise model (name ``aer-noise:<Fake>``).
    """
    from qiskit_ibm_runtime import IBMBackend, Session
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    if isinstance(obj, Session):  # Batch is a Session
        inner = getattr(obj, "_backend", None)  # the object it was opened with; public API gives only the name
        if inner is None and obj.backend() is not None:
            inner = obj.service.backend(obj.backend())
        if inner is None:
            raise BackendError(f"{type(obj).__name__} has no backend; open it with backend=...")
        return resolve_backend_object(inner)
    if isinstance(obj, FakeBackendV2):
        return ResolvedBackend(name=f"fake:{type(obj).__name__}", kind="fake", backend=obj)
    if isinstance(obj, IBMBackend):
        return ResolvedBackend(name=f"ibm:{obj.name}", kind="ibm", backend=obj, service=obj.service)
    from qiskit_aer import AerSimulator

    if isinstance(obj, AerSimulator):
        if obj.options.noise_model is not None:
            raise BackendError("an AerSimulator with a noise model is not supported; name it aer-noise:<FakeName>")
        return ResolvedBackend(name="aer", kind="aer", backend=obj, simulator=obj)
    raise BackendError(
        f"cannot run on a {type(obj).__name__}; pass a backend name ({', '.join(VALID_FORMS)}), a fake or IBM "
        "backend, a noiseless AerSimulator, a Session or a Batch"
    )
