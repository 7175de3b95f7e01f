"""Telling a child whose event loop is blocked: it says nothing, even when asked.

Design notes
------------
A handler that blocks its child's main thread (a stuck C call, an
``async def`` handler computing for minutes without awaiting) stops the
child's event loop: the child reports nothing, answers nothing, and its
batch would wait for ever when no job time limit applies. A child busy in
``def`` handlers is not silent in that sense: they run in threads, and its
loop still reads and answers messages.

``SilenceCheck`` holds the rule, ``ChildWatch`` (``engine.core.watch``)
applies it on its regular wake-ups, so a busy run pays nothing: a quiet
period is counted only while the run waits on the child's pipe
(``ChildChannel.waiting_since``), from the moment that wait began, and any
message the child sends ends it. A third of the limit into a quiet period
the child is sent one ``Ping``, which its loop answers with ``Pong`` at
once; a child still quiet at the limit is taken for crashed: the watch
kills it and the run reports ``verdict`` as the crash (``error`` event, its
jobs released as after a crash, the child restarted within
``BATCH_RETRIES``). Time that the run spends recording what the child said
(a slow store, an outage) is not counted against the child.

All timing is on ``trio.current_time``, so the mock clock drives it in tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from engine.config.parsers import format_seconds

__all__ = ["SilenceCheck"]


class SilenceCheck:
    """The silence rule for one child.

    Args:
        limit_seconds: how long the child may stay quiet; 0: never checked.
        waiting_since: when the run began waiting for the child's next
            message (trio time), None while it does not wait.
    """

    def __init__(self, *, limit_seconds: float, waiting_since: Callable[[], float | None]) -> None:
        self._limit = limit_seconds
        self._waiting_since = waiting_since
        self._pinged = math.nan  # the start of the quiet period last pinged
        #: Why the child is taken for crashed, once it is; None before.
        self.verdict: str | None = None

    def check(self, now: float) -> bool:
        """Whether to ping the child now; sets ``verdict`` once the child has
        been quiet for the whole limit."""
        since = self._waiting_since() if self._limit else None
        if since is None or self.verdict is not None:
            return False
        if now - since >= self._limit:
            self.condemn()
            return False
        if now - since >= self._limit / 3 and self._pinged != since:
            self._pinged = since
            return True
        return False

    def condemn(self) -> None:
        """The child is silent: it was quiet for the whole limit, or did not
        even take the ping off its pipe by then."""
        self.verdict = (
            f"the child sent nothing for {format_seconds(self._limit)} s,"
            " not even an answer to a ping: its event loop is blocked"
        )

    def deadline(self) -> float:
        """When the current quiet period reaches the limit (inf when none runs)."""
        since = self._waiting_since() if self._limit else None
        return math.inf if since is None else since + self._limit

    def wake_at(self) -> float:
        """When ``check`` has something to do next, if the current quiet
        period goes on (inf when none runs: a period that starts later is
        seen on the watch's next regular wake-up)."""
        since = self._waiting_since() if self._limit else None
        if since is None:
            return math.inf
        return since + self._limit if self._pinged == since else since + self._limit / 3
