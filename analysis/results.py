"""The result file of a gradient-variance study: a dataclass with a JSON round trip, written atomically per point."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["StudyResult", "package_versions", "utc_now"]

SCHEMA = "qldm.bp/1"
_PACKAGES = ("qldm", "torch", "numpy", "qiskit", "qiskit-aer", "qiskit-ibm-runtime", "scipy")


def package_versions() -> dict[str, str]:
    """Versions of the packages that produce the numbers (``"missing"`` when not installed)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def utc_now() -> str:
    """ISO-8601 UTC timestamp."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StudyResult:
    """A study: its settings and one record per finished point.

    Attributes:
        settings: The command's settings (designs, qubits, layers, samples, observable, seed, noise...).
        points: Per point: its config (``design``, ``n_qubits``, ``n_layers``, ``observable``, ``samples``, ``seed``,
            ``key``) merged with its outcome (``variance``, ``ci_low``, ``ci_high``, ``exact``, ``method``, ``seconds``,
            ...).
        fits: Per ``design|L<layers>``: ``{"slope", "stderr", "intercept", "n_points"}``.
        versions: :func:`package_versions` at creation.
        created: Timestamp of creation; ``updated`` of the last write.
        noise: For noisy runs: backend name and its calibration date; ``None`` otherwise.
    """

    settings: dict[str, Any]
    points: list[dict[str, Any]] = field(default_factory=list)
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    created: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)
    noise: dict[str, Any] | None = None
    schema: str = SCHEMA

    def done(self) -> set[str]:
        """Keys of the finished points."""
        return {p["key"] for p in self.points}

    def add(self, point: dict[str, Any]) -> None:
        """Add (or replace) a point by its ``key``."""
        self.points = [p for p in self.points if p["key"] != point["key"]] + [point]
        self.updated = utc_now()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudyResult:
        """Parse a result file.

        Raises:
            ValueError: If the text is not a result of this schema.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(
                f"not a {SCHEMA} result (schema={data.get('schema') if isinstance(data, dict) else None!r})"
            )
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write atomically (temporary file + rename): an interrupted run never leaves a half-written file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> StudyResult:
        return cls.from_json(Path(path).read_text())
