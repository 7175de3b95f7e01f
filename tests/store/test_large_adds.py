"""An add larger than one insert page (SQLite writes 500 rows a statement)
is still one atomic add: every job in order, duplicates refused across
pages, on every backend."""

from __future__ import annotations

import trio

from engine.store import NewJob, Store
from tests.store.helpers import DEADLINE, all_jobs


async def test_an_add_of_many_pages_keeps_order_and_refuses_duplicates(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        # Keys repeat 1,000 jobs apart, so each duplicate is on a later page
        # than the job it repeats.
        jobs = [NewJob(type="echo", payload=n, key=f"k{n % 1000}") for n in range(1_201)]
        added = await store.add_jobs("b", jobs)
        assert (added.enqueued, added.duplicates) == (1_000, 201)
        stored = await all_jobs(store, "b")
        assert [job.job_id for job in stored] == list(added.job_ids)
        assert [job.payload for job in stored] == list(range(1_000))
