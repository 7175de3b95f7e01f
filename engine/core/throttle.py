"""Throttling from the handler: a run's hold on starts after a handler
raised ``RateLimited`` (its API answered 429).

Design notes
------------
The job itself goes back to pending with its attempt refunded, and not
due before the hold ends (the recorder writes it as a refunded ``Release``
with a ``retry_at``), so no engine hands it out during the hold, and the
run's next claim cannot take it back before the recorder let go of it. What the 429 says is "not
now, not from you": so for ``retry_after`` seconds the run starts nothing
more. The hold is kept where starts happen: the dispatcher claims and sends
nothing while it lasts (``Throttle.wait``, before a claim and before each
job's start), and the child starts none of the jobs it already holds (it
holds its own starts when the handler raises, a pipe hop earlier than the
engine hears of it). Jobs already running go on.

A job type with a rate limit of its own (``[types.NAME] rate_limit``) names
an API shared by every batch and engine, so the hold goes to its window in
the store too (``TypeGate.hold``, ``Store.hold_rate``): that window is full
until the hold ends, and every engine of the cluster waits at the type's
gate. A type without its own rate has no shared window to hold; its other
batches go on.

Holds only ever lengthen: of two overlapping holds the later end wins.
Time is read through ``trio.current_time()``, so a ``MockClock`` drives it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from engine.core.type_gate import TypeGate
from engine.errors import StoreError
from engine.store.records import JobRecord
from protocols import events

__all__ = ["MIN_HOLD_SECONDS", "Throttle", "hold_seconds"]

log = logging.getLogger("batchyard.limits")

#: The shortest hold, whatever ``retry_after`` says. A job released due at
#: once could be claimed again by its own run in the instant between the
#: store taking the release and the recorder letting go of the job, which
#: would leave it active with nobody to run it; 50 ms is far longer than
#: that instant and far shorter than any API's ``Retry-After``.
MIN_HOLD_SECONDS = 0.05


def hold_seconds(retry_after: float) -> float:
    """How long a handler's ``retry_after`` holds starts: at least
    ``MIN_HOLD_SECONDS``."""
    return max(retry_after, MIN_HOLD_SECONDS)


async def _nothing() -> None:
    return None


class Throttle:
    """When a run may start jobs again after handlers said their API is
    rate limited.

    Args:
        type_gate: the gate of a job type with limits of its own, None for
            the others.
    """

    def __init__(self, type_gate: Callable[[str], TypeGate | None] = lambda _: None) -> None:
        self._type_gate = type_gate
        self._until = float("-inf")

    @property
    def resume_at(self) -> float:
        """When the run may start jobs again (``trio.current_time()`` units;
        in the past when it may now)."""
        return self._until

    def held(self) -> bool:
        """Whether the run starts nothing now."""
        return self._until > trio.current_time()

    async def wait(self, before_waiting: Callable[[], Awaitable[None]] = _nothing) -> None:
        """Return once no hold is on; ``before_waiting`` is awaited first
        when there is one.

        Cancellation: atomic: nothing happened.
        """
        if not self.held():
            await trio.lowlevel.checkpoint()
            return
        await before_waiting()
        while True:  # a hold may grow while this waits
            until = self._until
            if until <= trio.current_time():
                return
            await trio.sleep_until(until)

    async def hold(
        self, job: JobRecord, retry_after: float, *, now: float
    ) -> events.RateLimitedJob:
        """Start nothing for ``retry_after`` seconds from now, and hold the
        type of ``job`` as long across the cluster when it has a rate limit
        of its own (a store that does not answer is logged: the type then
        goes on at its usual rate).

        Cancellation: the run's hold is on at once; the type's may or may
        not have been written (one store call).

        Args:
            job: the job whose handler raised ``RateLimited``.
            retry_after: the seconds it asked for.
            now: the wall clock (epoch seconds), for the event's ``resumeAt``.

        Returns:
            The ``job:rate-limited`` event's data.
        """
        retry_after = hold_seconds(retry_after)
        self._until = max(self._until, trio.current_time() + retry_after)
        type_wide = False
        gate = self._type_gate(job.type)
        if gate is not None and gate.rate is not None:
            try:
                await gate.hold(retry_after)
                type_wide = True
            except StoreError as exc:
                log.error("cannot hold type %r for %g s: %s", job.type, retry_after, exc)
        return events.RateLimitedJob(
            batch_id=job.batch_id,
            job_id=job.job_id,
            type=job.type,
            retry_after=retry_after,
            resume_at=now + retry_after,
            type_wide=type_wide,
        )
