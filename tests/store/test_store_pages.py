"""The ``Store`` contract's pages of jobs (``list_jobs``), run against every
backend (SQLite and Redis).

The ``store`` fixture (``conftest.py``) is parametrised over the backends, so
each test here runs once per backend. Store calls run in worker threads
(SQLite) or on sockets (Redis), so the deadlines are real
``trio.fail_after`` ones.
"""

from __future__ import annotations

import pytest
import trio

from engine.store import Complete, Store
from protocols.lifecycle import JobState
from tests.store.helpers import DEADLINE, LEASE, all_jobs, jobs_of

# -- pagination -------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "limit"), [(23, 5), (20, 5), (1, 100), (0, 3)])
async def test_pages_together_are_every_job_in_order(store: Store, n: int, limit: int) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.create_batch("other", "echo")
        ids: list[str] = []
        for chunk in range(0, n, 4):  # interleaved with another batch's jobs
            ids += (await store.add_jobs("b", jobs_of(min(4, n - chunk)))).job_ids
            await store.add_jobs("other", jobs_of(2))
        listed = await all_jobs(store, "b", limit=limit)
        assert [j.job_id for j in listed] == ids
        assert all(j.batch_id == "b" for j in listed)


async def test_pages_by_state(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        ids = (await store.add_jobs("b", jobs_of(11))).job_ids
        await store.claim_jobs("b", 11, owner="e", lease_seconds=LEASE)
        done = ids[1::2]
        await store.apply([Complete(job_id=i, result=i) for i in done], owner="e")
        completed = await all_jobs(store, "b", state=JobState.COMPLETED, limit=2)
        assert [(j.job_id, j.result) for j in completed] == [(i, i) for i in done]
        active = await all_jobs(store, "b", state=JobState.ACTIVE, limit=4)
        assert [j.job_id for j in active] == list(ids[0::2])
        assert await all_jobs(store, "b", state=JobState.FAILED) == []


@pytest.mark.parametrize("cursor", ["", "abc", "-1", "1.5", " 3", "\u0663", "9" * 40])
async def test_bad_cursor(store: Store, cursor: str) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        with pytest.raises(ValueError, match="cursor"):
            await store.list_jobs("b", cursor=cursor)


async def test_bad_limit(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        with pytest.raises(ValueError, match="limit"):
            await store.list_jobs("b", limit=0)
