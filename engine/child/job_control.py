"""One job's own stop inside the child: its cancel scope and its time limit.

Design notes
------------
Each job the child holds runs in a cancel scope of its own, kept by
``JobScopes`` under the job's id, so ``CancelJob`` stops that job alone:
an ``async def`` handler where it waits, a plain ``def`` handler by
abandoning its thread (a thread cannot be interrupted), a queued job before
it starts. ``call_within`` puts a handler under its job's time limit and
turns the deadline into ``JobTimedOut``, whose message is the job's error.
A handler that blocks the loop itself is deaf to both; the engine replaces
the child then (``engine.core.watch``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import trio

from engine.jobs.registry import JobContext, JobType, call_handler

__all__ = ["JobScopes", "JobTimedOut", "call_within"]


class JobTimedOut(Exception):
    """A handler ran past its job's time limit; the message is the job's
    error as users see it (``timed out after Ns``)."""


class JobScopes:
    """The cancel scope of each job the child holds, by job id."""

    def __init__(self) -> None:
        self._scopes: dict[str, trio.CancelScope] = {}

    @contextlib.contextmanager
    def scope_of(self, job_id: str) -> Iterator[None]:
        """Run the body in the job's own scope; a ``cancel`` of the job ends
        the body there (the cancellation is caught by the scope)."""
        with trio.CancelScope() as scope:
            self._scopes[job_id] = scope
            try:
                yield
            finally:
                del self._scopes[job_id]

    def cancel(self, job_id: str) -> bool:
        """Cancel the job's scope; whether the job was held."""
        scope = self._scopes.get(job_id)
        if scope is None:
            return False
        scope.cancel()
        return True


async def call_within(
    timeout: float | None, job_type: JobType, payload: Any, ctx: JobContext
) -> Any:
    """The handler's result, or ``JobTimedOut`` once it ran ``timeout``
    seconds (None: no limit).

    Cancellation: the handler is cancelled (a thread abandoned) with the call.

    Raises:
        JobTimedOut: the deadline passed first.
        Exception: whatever the handler raised.
    """
    if timeout is None:
        return await call_handler(job_type, payload, ctx)
    with trio.move_on_after(timeout):
        return await call_handler(job_type, payload, ctx)
    raise JobTimedOut(f"timed out after {timeout:g}s")
