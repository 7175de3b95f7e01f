"""The child's hold on starts after a handler raised ``RateLimited``.

The engine stops sending the batch's jobs when it hears of the raise, but
the child may already hold jobs that have not started (queued for a slot,
or holding one): they must not start either until the hold ends, so the
batch starts nothing for the time its handler asked. Holds only lengthen.
Time is ``trio.current_time()``.
"""

from __future__ import annotations

import trio

__all__ = ["StartHold"]


class StartHold:
    """Until when no job of this child may start."""

    def __init__(self) -> None:
        self._until = float("-inf")

    def hold_for(self, seconds: float) -> None:
        """No job starts for ``seconds`` from now (or longer, if held so)."""
        self._until = max(self._until, trio.current_time() + seconds)

    def holding(self) -> bool:
        """Whether starts are held back now."""
        return self._until > trio.current_time()

    async def wait_out(self) -> None:
        """Return once starts are no longer held back (a hold that grows
        meanwhile is waited out too).

        Cancellation: atomic: nothing happened.
        """
        while True:
            until = self._until
            if until <= trio.current_time():
                await trio.lowlevel.checkpoint()
                return
            await trio.sleep_until(until)
