"""The results of one bench run, as frozen attrs values, and their JSON form.

Design notes
------------
A ``Result`` is one system on one workload: the configuration it ran in (in
words, because "best honest configuration" has to be readable), a flat
mapping of named numbers, optional raw samples for the charts, and notes. A
system that did not run is still a ``Result``, with ``status`` "skipped" or
"failed" and the reason, so nothing is silently dropped.

``Report`` is everything ``latest.json`` holds. The JSON is produced by a
plain cattrs converter; ``SCHEMA_VERSION`` changes when a field does, and
``validate_report`` is what the quick test uses to check a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs

__all__ = [
    "SCHEMA_VERSION",
    "Machine",
    "Report",
    "Result",
    "Status",
    "Target",
    "Verdict",
    "failed",
    "load_report",
    "skipped",
    "validate_report",
    "write_report",
]

SCHEMA_VERSION = 1

Status = Literal["ok", "skipped", "failed"]
Verdict = Literal["met", "missed", "not measured"]


@attrs.frozen(kw_only=True)
class Result:
    """One system on one workload."""

    workload: str
    system: str
    config: str
    status: Status = "ok"
    reason: str | None = None
    metrics: Mapping[str, float | int | None] = attrs.field(factory=dict)
    samples: Mapping[str, list[float]] = attrs.field(factory=dict)
    notes: tuple[str, ...] = ()

    def metric(self, name: str) -> float | None:
        """The metric ``name`` as a float, None when absent or not measured."""
        value = self.metrics.get(name)
        return None if value is None else float(value)


def skipped(workload: str, system: str, reason: str, config: str = "") -> Result:
    """A result for a system that did not run on ``workload``."""
    return Result(workload=workload, system=system, config=config, status="skipped", reason=reason)


def failed(workload: str, system: str, reason: str, config: str = "") -> Result:
    """A result for a system whose run broke; ``reason`` says how."""
    return Result(workload=workload, system=system, config=config, status="failed", reason=reason)


@attrs.frozen(kw_only=True)
class Target:
    """One of the issue's targets, judged on this run's numbers."""

    workload: str
    goal: str
    verdict: Verdict
    measured: str


@attrs.frozen(kw_only=True)
class Machine:
    """What the numbers were measured on."""

    cpu: str
    cores: int
    memory_gib: float
    system: str
    python: str


@attrs.frozen(kw_only=True)
class Report:
    """Everything one run of ``python -m bench`` found."""

    schema: int
    mode: Literal["full", "quick"]
    started_at: str
    duration_seconds: float
    machine: Machine
    versions: Mapping[str, str]
    store: str
    sizes: Mapping[str, int | float]
    caps: tuple[str, ...]
    results: tuple[Result, ...]
    targets: tuple[Target, ...]
    charts: tuple[str, ...]
    notes: tuple[str, ...]


_CONVERTER = cattrs.Converter(forbid_extra_keys=True)


def _structure_number(value: Any, type_: Any) -> int | float | None:
    # Metrics and sizes are plain JSON numbers (or null where not measured);
    # cattrs has no built-in hook for a union of primitives.
    if value is None and type_ == (float | int | None):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return value


for _union in (int | float, float | int | None):
    _CONVERTER.register_structure_hook(_union, _structure_number)


def write_report(report: Report, path: Path) -> None:
    """Write ``report`` as indented JSON, atomically (through a ``.tmp`` file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(path.suffix + ".tmp")
    text = json.dumps(_CONVERTER.unstructure(report), indent=1, allow_nan=False)
    scratch.write_text(text + "\n", encoding="utf-8")
    scratch.replace(path)


def load_report(path: Path) -> Report:
    """Read a report back, strictly: an unknown or missing field is an error.

    Raises:
        ValueError: the file is not a report of this schema.
    """
    return validate_report(json.loads(path.read_text(encoding="utf-8")))


def validate_report(document: Any) -> Report:
    """``document`` (parsed JSON) as a ``Report``, checked field by field.

    Raises:
        ValueError: a field is missing, unknown or of the wrong type, or the
            schema is not ``SCHEMA_VERSION``.
    """
    try:
        report = _CONVERTER.structure(document, Report)
    except (cattrs.BaseValidationError, KeyError, TypeError) as exc:
        details = (
            "; ".join(cattrs.transform_error(exc))
            if isinstance(exc, cattrs.BaseValidationError)
            else str(exc)
        )
        raise ValueError(f"not a bench report: {details}") from exc
    if report.schema != SCHEMA_VERSION:
        raise ValueError(f"report schema {report.schema}, expected {SCHEMA_VERSION}")
    return report
