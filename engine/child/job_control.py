"""One job's own stop inside the child: its cancel scope and its time limit.

Design notes
------------
Each job the child runs is bound, by its id, to the cancel scope of the
worker that runs it (``engine.child.workers``) for as long as it runs, so
``CancelJob`` stops that job alone: an ``async def`` handler where it
waits, a job waiting to start before it starts.
``call_within`` puts a handler under its job's time limit and turns the
deadline into ``JobTimedOut``, whose message is the job's error.
A ``def`` handler's thread cannot be interrupted: a stop of its job waits
for it to return (then it is reported stopped), and a handler that blocks
the loop itself hears nothing; either way the engine replaces the child
once the grace is over (``engine.core.watch``). Only when the whole child
stops (``Cancel``, the engine gone) are threads abandoned.
"""

from __future__ import annotations

from typing import Any

import trio

from engine.jobs.registry import JobContext, JobType, call_handler

__all__ = ["JobScopes", "JobTimedOut", "call_within"]


class JobTimedOut(Exception):
    """A handler ran past its job's time limit; the message is the job's
    error as users see it (``timed out after Ns``)."""


class JobScopes:
    """The cancel scope of each job the child runs, by job id."""

    def __init__(self) -> None:
        self._scopes: dict[str, trio.CancelScope] = {}
        #: The shields of the ``def`` handlers' threads now running.
        self.threads: set[trio.CancelScope] = set()

    def abandon_threads(self) -> None:
        """The whole child stops: the threads of ``def`` handlers are
        abandoned (their jobs reported interrupted) instead of waited for."""
        for thread in self.threads:
            thread.cancel()

    def bind(self, job_id: str, scope: trio.CancelScope) -> None:
        """``cancel(job_id)`` cancels ``scope`` from now until ``unbind``."""
        self._scopes[job_id] = scope

    def unbind(self, job_id: str) -> None:
        """The job no longer runs: ``cancel(job_id)`` finds nothing."""
        del self._scopes[job_id]

    def cancel(self, job_id: str) -> bool:
        """Cancel the job's scope; whether it had one: whether a worker runs
        the job (its handler, or its wait to start). A job still queued for
        a worker has none: False, nothing cancelled."""
        scope = self._scopes.get(job_id)
        if scope is None:
            return False
        scope.cancel()
        return True


async def call_within(
    timeout: float | None, job_type: JobType, payload: Any, ctx: JobContext, scopes: JobScopes
) -> Any:
    """The handler's result, or ``JobTimedOut`` once it ran ``timeout``
    seconds (None: no limit).

    A plain ``def`` handler's thread is waited for when only its job is
    stopped (``JobScopes.cancel``, the time limit): the stop takes effect
    when the thread returns, and the engine replaces the child if it does
    not within the grace. When the whole child stops
    (``JobScopes.abandon_threads``) the thread is abandoned.

    Cancellation: an ``async def`` handler is cancelled where it waits; a
    ``def`` handler as said above.

    Raises:
        JobTimedOut: the deadline passed first.
        Exception: whatever the handler raised.
    """
    if timeout is None:  # no deadline: no scope of its own either
        if job_type.is_async:  # the common case: no frame in between
            return await job_type.handler(payload, ctx)
        return await _call(job_type, payload, ctx, scopes)
    with trio.move_on_after(timeout):
        return await _call(job_type, payload, ctx, scopes)
    raise JobTimedOut(f"timed out after {timeout:g}s")


async def _call(job_type: JobType, payload: Any, ctx: JobContext, scopes: JobScopes) -> Any:
    if job_type.is_async:
        return await job_type.handler(payload, ctx)
    with trio.CancelScope(shield=True) as thread:
        scopes.threads.add(thread)
        try:
            result = await call_handler(job_type, payload, ctx)
        finally:
            scopes.threads.discard(thread)
    # Where a stop of the job (or of the whole child) came meanwhile, it
    # is delivered now.
    await trio.lowlevel.checkpoint()
    return result
