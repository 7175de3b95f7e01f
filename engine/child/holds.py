"""The child's hold on starts after a handler raised ``RateLimited``.

The engine stops sending the batch's jobs when it hears of the raise, but
the child may already hold jobs that have not started (queued for a
worker, or waiting to start): they must not start either until the hold
ends, so the batch starts nothing for the time its handler asked. Holds
only lengthen.
A job waits for the hold where it waits for the batch's rate window
(``engine.child.rate_window``). Time is ``trio.current_time()``.
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

    def until(self) -> float:
        """The time (``trio.current_time()``) before which no job starts;
        -inf when nothing was ever held."""
        return self._until
