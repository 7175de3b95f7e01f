"""What the store tests share: a hand-driven clock and small job helpers."""

from __future__ import annotations

import threading
from typing import Any

from engine.store import JobRecord, NewJob, Store

DEADLINE = 20
LEASE = 30.0


class FakeClock:
    """Wall-clock seconds, moved by hand.

    ``hold(entered, proceed)`` makes the next reading, which the SQLite store
    does inside a transaction in its worker thread, signal ``entered`` and
    wait for ``proceed``: a way to catch a transaction in the middle.
    """

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self._hold: tuple[threading.Event, threading.Event] | None = None

    def __call__(self) -> float:
        hold, self._hold = self._hold, None
        if hold is not None:
            entered, proceed = hold
            entered.set()
            assert proceed.wait(DEADLINE)
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def hold(self, entered: threading.Event, proceed: threading.Event) -> None:
        self._hold = (entered, proceed)


def jobs_of(n: int, **fields: Any) -> list[NewJob]:
    return [NewJob(type="echo", payload={"i": i}, **fields) for i in range(n)]


async def all_jobs(store: Store, batch_id: str, **filters: Any) -> list[JobRecord]:
    """Every page of ``list_jobs`` together, checking that pages are full."""
    jobs: list[JobRecord] = []
    cursor = None
    while True:
        page = await store.list_jobs(batch_id, cursor=cursor, **filters)
        jobs += page.jobs
        if page.next_cursor is None:
            return jobs
        assert len(page.jobs) == filters.get("limit", 100)
        cursor = page.next_cursor
