"""Follow-up jobs: what a handler adds with ``ctx.enqueue``.

Design notes
------------
``enqueue`` is a plain call, the same from an ``async def`` handler (in the
child's Trio loop) and a ``def`` handler (in a worker thread): it only
checks the job and keeps it. Nothing reaches the store from the child; the
jobs travel with the job's completion (``ipc.JobCompleted.follow_ups``) and
the engine adds them in the store step that records it, so they exist if
and only if the job completed. A handler that raises, or whose job is
interrupted, adds nothing.

Checks happen at the call, so a mistake fails the job with an error that
points at the ``enqueue`` line: a type this child does not know (the engine
loads the same job modules), a field the HTTP API would refuse, a payload
that is not JSON. The engine checks again what only it knows (the target
batch exists, the cost fits the rate limits) and fails the job otherwise.
"""

from __future__ import annotations

from typing import Any

import attrs

from engine.errors import UnknownJobType
from engine.jobs.registry import JobRegistry
from protocols import ipc, jsontext
from protocols.codec import camel_case

__all__ = ["FollowUps"]

_FIELDS = tuple(field.name for field in attrs.fields(ipc.FollowUp) if field.name != "batch_id")

#: A job field may be named as in Python or as on the wire (``delaySeconds``).
_PYTHON_NAMES = {camel_case(name): name for name in _FIELDS}


class FollowUps:
    """The jobs one handler run enqueued, checked as they came.

    Args:
        registry: the job types a follow-up may name.
    """

    def __init__(self, registry: JobRegistry) -> None:
        self._registry = registry
        self._jobs: list[ipc.FollowUp] = []

    def enqueue(
        self, type: str, payload: Any = None, batch: str | None = None, **fields: Any
    ) -> None:
        """Keep one follow-up job; see ``JobContext.enqueue``.

        Raises:
            UnknownJobType: no job type ``type`` is registered.
            TypeError: a keyword is not a job field, or the payload is not JSON.
            ValueError: a field or the batch id holds a value the API refuses.
        """
        # The API's models are imported by the first enqueue, not with the
        # child: most handlers never enqueue, and every child start would
        # pay for loading them.
        from protocols import api

        if type not in self._registry:
            raise UnknownJobType(f"ctx.enqueue: unknown job type {type!r}")
        if batch is not None and (
            not isinstance(batch, str) or api.BATCH_ID_PATTERN.fullmatch(batch) is None
        ):
            raise ValueError(f"ctx.enqueue: invalid batch id {batch!r}")
        fields = {_PYTHON_NAMES.get(name, name): value for name, value in fields.items()}
        try:
            spec = api.JobSpec(type=type, payload=payload, **fields)
        except TypeError as exc:
            raise TypeError(f"ctx.enqueue: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"ctx.enqueue: {exc}") from None
        try:
            jsontext.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"ctx.enqueue: the payload is not JSON: {exc}") from None
        values = {name: getattr(spec, name) for name in _FIELDS}
        self._jobs.append(ipc.FollowUp(batch_id=batch, **values))

    def taken(self) -> tuple[ipc.FollowUp, ...]:
        """Every job kept so far, in the order they were enqueued."""
        return tuple(self._jobs)
