"""``RunJobs`` lines written straight from job values, without building
``ipc.JobToRun`` values or running them through the converter.

Design notes
------------
The engine sends every job it dispatches in a ``RunJobs`` line, so the
per-job cost of that line is on its hot path: building a validated
``JobToRun`` and unstructuring it costs several times what a plain dict
does. ``job_object`` gives a job's JSON object as the converter would
unstructure its ``JobToRun``, and ``run_jobs_line`` wraps such objects in
the ``RunJobs`` message with one JSON call. The bytes are the ones
``LineFramer(ipc.ParentMessage).encode`` writes for the same message, and
the child decodes them as it decodes any ``RunJobs``.

The wire format is not restated here: the keys are read at import from what
the converter writes for a ``JobToRun`` (``protocols.codec``), the omitted
default of ``cost`` from the field itself, and the message around them
from what the converter writes for an empty ``RunJobs``; adding a field to ``JobToRun`` fails this
module's import until ``job_object`` fills it. A property test holds the
bytes equal to the converter's for random jobs.

What is checked: that every value can be written as JSON (``TypeError`` /
``ValueError`` from the encoder become ``LocalProtocolError``, as with
``LineFramer.encode``); integers of any size stay exact (``jsontext``).
What is not: the ``JobToRun`` validators (``attempt`` at least 1, ``cost``
finite and above 0) and the field types. Callers pass values the store has
already checked, and a payload as the store holds it (decoded JSON: a dict
with keys that are not strings, or a value orjson writes differently from
the converter, is not one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from protocols import ipc, jsontext
from protocols.codec import CONVERTER
from protocols.errors import LocalProtocolError
from protocols.fields import OMIT_WHEN_DEFAULT

__all__ = ["job_object", "run_jobs_line"]


def _wire_keys() -> dict[str, str]:
    """Each ``JobToRun`` field's key, as the converter writes it (every
    field held away from its default, so none is left off)."""
    names = list(attrs.fields_dict(ipc.JobToRun))
    probe = ipc.JobToRun(
        job_id="", type="", payload=None, attempt=1, timeout_seconds=1.0, cost=2.0
    )
    keys = list(CONVERTER.unstructure(probe))
    if len(keys) != len(names):
        raise RuntimeError("JobToRun's wire keys do not match its fields")
    return dict(zip(names, keys, strict=True))


_KEYS = _wire_keys()
_JOB_ID = _KEYS.pop("job_id")
_TYPE = _KEYS.pop("type")
_PAYLOAD = _KEYS.pop("payload")
_ATTEMPT = _KEYS.pop("attempt")
_TIMEOUT = _KEYS.pop("timeout_seconds")
_COST = _KEYS.pop("cost")
if _KEYS:
    raise RuntimeError(f"job_object does not write JobToRun's {sorted(_KEYS)}")
_COST_FIELD = attrs.fields(ipc.JobToRun).cost
if not _COST_FIELD.metadata.get(OMIT_WHEN_DEFAULT):
    raise RuntimeError("job_object leaves cost off at its default, and JobToRun does not")
_COST_DEFAULT = _COST_FIELD.default

#: The message around the jobs, as the converter writes it with none: the
#: jobs take the place of its empty array, ahead of the tag.
_MESSAGE: dict[str, Any] = CONVERTER.unstructure(ipc.RunJobs(jobs=()), ipc.ParentMessage)
(_JOBS,) = CONVERTER.unstructure(ipc.RunJobs(jobs=()))


def job_object(
    job_id: str,
    type: str,
    payload: Any,
    attempt: int,
    timeout_seconds: float | None,
    cost: float,
) -> dict[str, Any]:
    """One job's JSON object in a ``RunJobs`` line: the fields of
    ``ipc.JobToRun``, unchecked (see the module's notes)."""
    job = {
        _JOB_ID: job_id,
        _TYPE: type,
        _PAYLOAD: payload,
        _ATTEMPT: attempt,
        _TIMEOUT: timeout_seconds,
    }
    if cost != _COST_DEFAULT:
        job[_COST] = cost
    return job


def run_jobs_line(jobs: Sequence[dict[str, Any]]) -> bytes:
    """The ``RunJobs`` line (newline included) of objects ``job_object`` made.

    Raises:
        LocalProtocolError: a value cannot be written as JSON.
    """
    try:
        return jsontext.dumps({**_MESSAGE, _JOBS: jobs}) + b"\n"
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode RunJobs: {exc}") from exc
