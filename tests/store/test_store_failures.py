"""The ``Store`` contract under failure: a write that fails half-way, values
at the edges of the encoding, a cancelled call; run against every backend.

The ``store`` fixture (``conftest.py``) is parametrised over the backends, so
each test here runs once per backend. Store calls run in worker threads
(SQLite) or on sockets (Redis), which ``MockClock``'s autojump would mistake
for idleness, so the deadlines are real ``trio.fail_after`` ones.
"""

from __future__ import annotations

import pytest
import trio

from engine.store import Complete, JobRecord, NewJob, Store
from tests.store.helpers import DEADLINE, LEASE, all_jobs, jobs_of

# -- failures, cancellation, closing ----------------------------------------------------


async def test_error_mid_write_leaves_nothing(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        # Priorities have 64 bits: the third job is refused, and so are the others.
        for bad in [2**63, -(2**63) - 1]:
            jobs = [*jobs_of(2), NewJob(type="echo", priority=bad)]
            with pytest.raises(OverflowError):
                await store.add_jobs("b", jobs)
        with pytest.raises(TypeError):
            await store.add_jobs("b", [*jobs_of(2), NewJob(type="echo", payload={1j})])
        assert (await store.counts("b")).total == 0
        assert (await store.add_jobs("b", jobs_of(1))).enqueued == 1


async def test_integers_of_any_size_round_trip(store: Store) -> None:
    huge = {"n": 2**200, "list": [-(2**70), 2**64, 2**63 - 1, 1.5, "x"], "s": "\u00e9"}
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo", {"limit": 2**65})
        (job_id,) = (await store.add_jobs("b", [NewJob(type="echo", payload=huge)])).job_ids
        (claimed,) = await store.claim_jobs("b", 1, owner="e", lease_seconds=LEASE)
        assert claimed.payload == huge
        await store.apply([Complete(job_id=job_id, result=[huge, -(2**99)])], owner="e")
        (done,) = await all_jobs(store, "b")
        assert (done.payload, done.result) == (huge, [huge, -(2**99)])
        assert (await store.get_batch("b")).options == {"limit": 2**65}


async def test_a_cancelled_call_is_all_or_nothing(store: Store) -> None:
    """Cancelled, a call either raises ``Cancelled`` having done nothing, or returns."""
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.add_jobs("b", jobs_of(3))
        claimed: list[JobRecord] | None = None
        with trio.CancelScope() as scope:
            scope.cancel()
            claimed = await store.claim_jobs("b", 5, owner="e", lease_seconds=LEASE)
            await trio.lowlevel.checkpoint()
        assert scope.cancelled_caught
        active = (await store.counts("b")).active
        assert active == (0 if claimed is None else len(claimed))
