"""Store steps retried while the store is away, and what the engine knows of it.

Design notes
------------
A store that does not answer (``StoreUnavailable``: Redis restarting, a
dropped connection, a locked or full SQLite file) is a pause, not an end: a
run keeps its child and what the child reported, and retries the step it
was on until the store takes it. ``StoreRetry.call`` is that loop, the only
one: an attempt, then waits of ``Backoff`` (0.1 s doubling up to 5 s)
between attempts until one succeeds. Any other ``StoreError`` (a command
the store refused) is a bug, not an outage, and is raised at once.

A caller that must end by a deadline (a run being stopped) passes its
``Patience``: once ``end_at`` gives it a deadline, the wait in progress is
cut short there, one last attempt is made, and its error is raised. Until
then a step is retried for as long as it takes. A caller that must not
touch the store any more (a run fenced, ``engine.core.fence``: its leases
may be another engine's soon) ``abandon``s its patience: from then on a
step raises ``StoreUnavailable`` without an attempt.

A step retried after a failure may have happened already: on Redis a
script whose reply was lost ran entirely or not at all. Every step retried
here is one that is safe to repeat: reads, ``release_run``, ``apply``
(outcomes for jobs no longer active are skipped, never applied twice) and
claims. A claim whose reply was lost took jobs no run knows of, active
under this engine's name, whose leases it would renew while it lives: the
run would wait for them without end. Its retry gets them first instead
(``Store.claim_jobs``), so they run once, here.

One ``StoreRetry`` per engine is shared by every run, the lease keeper and
the health check, so the engine logs one line when the store goes away and
one when it is back, however many tasks were waiting for it. While a step
is being retried, the store counts as away even if other calls answer (a
ping, a lease renewal): it does not take what the engine has to write, and
the health check says so. The first retried step that succeeds brings it
back. Time is trio's, so a ``MockClock`` drives the waits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import attrs
import trio

from engine.errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from engine.store import Store

__all__ = ["Backoff", "Patience", "StoreRetry"]

log = logging.getLogger("batchyard.engine")

_T = TypeVar("_T")


@attrs.frozen(kw_only=True)
class Backoff:
    """Waits between attempts: ``first``, times ``factor`` each time, at most ``cap``.

    The first retry comes quickly (a dropped connection is often back at
    once); the cap keeps a long outage to one attempt per task every few
    seconds, and the engine notices within that long that the store is back.
    """

    first: float = 0.1
    factor: float = 2.0
    cap: float = 5.0

    def delays(self) -> Iterator[float]:
        """The waits, one per retry, without end."""
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.factor, self.cap)


class Patience:
    """How long a caller waits for the store: without end until ``end_at``."""

    def __init__(self) -> None:
        self.deadline = math.inf
        self.abandoned = False
        self._shortened = trio.Event()

    def end_at(self, deadline: float) -> None:
        """Give up at ``deadline`` (trio time), or earlier if one was set.
        Waits already going are cut short there. Never blocks."""
        if deadline < self.deadline:
            self.deadline = deadline
            self._shortened.set()
            self._shortened = trio.Event()

    def abandon(self) -> None:
        """Give up now, without another attempt. Never blocks."""
        self.abandoned = True
        self.end_at(-math.inf)

    @property
    def exhausted(self) -> bool:
        """Whether the deadline has passed."""
        return trio.current_time() >= self.deadline

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or until the deadline if that comes first.

        Cancellation: atomic (it only sleeps).
        """
        until = trio.current_time() + seconds
        while trio.current_time() < min(until, self.deadline):
            with trio.move_on_at(min(until, self.deadline)):
                await self._shortened.wait()


class StoreRetry:
    """The engine's policy for store steps met by an outage, and the store's
    state as the engine last saw it (logged once per change).

    Args:
        backoff: the waits between attempts.
    """

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._down_since: float | None = None
        self._retrying = 0

    @property
    def store_available(self) -> bool:
        """False from a failed store call until a retried step succeeds (or,
        when none is being retried, any call)."""
        return self._down_since is None

    def failed(self, error: Exception) -> None:
        """A store call failed: the store is away (logged when it was not)."""
        if self._down_since is None:
            self._down_since = trio.current_time()
            # The message, not the error: a record kept (by a log handler)
            # must not keep the error's traceback and what it holds alive.
            log.warning("the store is unavailable, retrying until it is back: %s", str(error))

    def answered(self) -> None:
        """A store call succeeded: unless a step is still being retried, the
        store is back (logged when it was away)."""
        if not self._retrying:
            self._back()

    async def check(self, store: Store, timeout: float) -> bool:
        """Whether ``store`` answers a ping within ``timeout`` seconds (a ping
        that hangs is abandoned then) and no step is waiting for it. The
        answer is news of the store like any other call's: a change is
        logged once.

        Cancellation: atomic.
        """
        with trio.move_on_after(timeout):
            try:
                await store.ping()
            except StoreError as exc:
                self.failed(exc)
                return False
            self.answered()
            return self.store_available
        self.failed(StoreUnavailable(f"no answer to a ping within {timeout} s"))
        return False

    def _back(self) -> None:
        if self._down_since is not None:
            away = trio.current_time() - self._down_since
            self._down_since = None
            log.warning("the store is back after %.1f s", away)

    async def call(
        self, step: Callable[[], Awaitable[_T]], *, patience: Patience | None = None
    ) -> _T:
        """``step()``, retried with backoff while it raises ``StoreUnavailable``.

        Cancellation: between attempts, ``Cancelled`` ends it; an attempt is
        as cancellable as ``step`` is (a step that writes shields itself).

        Args:
            step: one attempt; it must be safe to repeat (module notes).
            patience: when given, attempts stop once its deadline passes
                (at least one attempt is always made).

        Returns:
            What the first successful attempt returned.

        Raises:
            StoreUnavailable: the last attempt's error, once ``patience``
                ran out; at once, without an attempt, once it was abandoned.
            StoreError: the store refused the step (not retried).
        """
        await _given_up(patience)
        try:
            result = await step()
        except StoreUnavailable as exc:
            self.failed(exc)
            if patience is not None and patience.exhausted:
                raise
        else:
            self.answered()
            return result
        self._retrying += 1
        try:
            return await self._retry(step, patience)
        finally:
            self._retrying -= 1

    async def _retry(self, step: Callable[[], Awaitable[_T]], patience: Patience | None) -> _T:
        delays = self.backoff.delays()
        while True:
            if patience is None:
                await trio.sleep(next(delays))
            else:
                await patience.wait(next(delays))
                await _given_up(patience)
            try:
                result = await step()
            except StoreUnavailable as exc:
                self.failed(exc)
                if patience is not None and patience.exhausted:
                    raise
                continue
            self._back()
            return result


async def _given_up(patience: Patience | None) -> None:
    """Raise ``StoreUnavailable`` once ``patience`` was abandoned, after a
    checkpoint: a caller cancelled meanwhile (a run's dispatcher, stopped)
    ends cancelled, not failed."""
    if patience is not None and patience.abandoned:
        await trio.lowlevel.checkpoint()
        raise StoreUnavailable("the store is not to be used any more (the run was fenced)")
