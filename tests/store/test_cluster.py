"""The cluster part of the ``Store`` contract, run against every backend:
run ownership, recovery of a dead engine, the engine registry, run owners in
batch listings and the startable batches.

As in ``test_store.py``, a ``FakeClock`` driven by hand stands for wall
time, and deadlines are real ``trio.fail_after`` ones.
"""

from __future__ import annotations

import pytest
import trio

from engine.errors import BatchNotFound, BatchRunning
from engine.store import Complete, EngineRecord, Fail, JobRecord, Release, RunRecord, Store
from protocols.lifecycle import JobState
from tests.store.conftest import Opener
from tests.store.helpers import DEADLINE, LEASE, FakeClock, all_jobs, jobs_of

# -- run ownership ----------------------------------------------------------------------


async def test_one_owner_at_a_time_until_its_lease_expires(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        assert await store.acquire_run("b", "e1", LEASE) == "e1"
        assert await store.acquire_run("b", "e2", LEASE) == "e1"
        clock.advance(LEASE - 1)
        assert await store.acquire_run("b", "e1", LEASE) == "e1"  # held: renewed
        clock.advance(LEASE - 1)
        assert await store.acquire_run("b", "e2", LEASE) == "e1"
        assert await store.runs() == [
            RunRecord(batch_id="b", owner="e1", expires_at=clock.now + 1)
        ]
        clock.advance(1)  # the lease ends now: free
        assert (await store.get_batch("b")).run_owner is None
        assert await store.acquire_run("b", "e2", LEASE) == "e2"
        assert (await store.get_batch("b")).run_owner == "e2"
        # The former owner's renewals do not take it back.
        await store.renew_leases("e1", LEASE)
        assert await store.runs() == [
            RunRecord(batch_id="b", owner="e2", expires_at=clock.now + LEASE)
        ]


async def test_renewing_leases_keeps_the_run(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        for batch_id in "bc":
            await store.create_batch(batch_id, "echo")
            await store.acquire_run(batch_id, "e1", 10)
        for _ in range(3):
            clock.advance(8)
            await store.renew_leases("e1", 10)
            assert await store.acquire_run("b", "e2", 10) == "e1"
        assert {run.expires_at for run in await store.runs()} == {clock.now + 10}
        assert await store.renew_leases("nobody", 10) == 0
        assert [run.owner for run in await store.runs()] == ["e1", "e1"]


async def test_a_handed_over_run_is_free_at_once(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.acquire_run("b", "e1", LEASE)
        clock.advance(1)
        assert await store.release_run("b", "e1", finished=False)
        assert await store.runs() == [RunRecord(batch_id="b", owner=None, expires_at=clock.now)]
        assert (await store.get_batch("b")).run_owner is None
        # Not renewed any more in e1's name, and free for anyone (e1 too).
        await store.renew_leases("e1", LEASE)
        assert await store.runs() == [RunRecord(batch_id="b", owner=None, expires_at=clock.now)]
        assert await store.acquire_run("b", "e2", LEASE) == "e2"
        assert await store.acquire_run("b", "e1", LEASE) == "e2"


async def test_only_the_owner_releases(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.acquire_run("b", "e1", LEASE)
        assert not await store.release_run("b", "e2", finished=True)
        assert not await store.release_run("b", "e2", finished=False)
        assert not await store.release_run("nope", "e1", finished=True)
        assert (await store.get_batch("b")).run_owner == "e1"
        # An expired lease nobody took is still its owner's to release...
        clock.advance(LEASE)
        assert await store.release_run("b", "e1", finished=True)
        assert await store.runs() == []
        assert not await store.release_run("b", "e1", finished=True)
        # ... but not once another engine took the run over.
        await store.acquire_run("b", "e1", LEASE)
        clock.advance(LEASE)
        await store.acquire_run("b", "e2", LEASE)
        assert not await store.release_run("b", "e1", finished=False)
        assert [(run.owner, run.expires_at) for run in await store.runs()] == [
            ("e2", clock.now + LEASE)
        ]


async def test_a_batch_with_a_live_run_is_not_deleted(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.add_jobs("b", jobs_of(2))
        await store.claim_jobs("b", 1, owner="e1", lease_seconds=LEASE)
        await store.acquire_run("b", "e1", LEASE)
        with pytest.raises(BatchRunning, match="e1"):
            await store.delete_batch("b")
        assert (await store.counts("b")).total == 2
        assert [run.owner for run in await store.runs()] == ["e1"]
        # Handed over, the run is nobody's: the batch goes, run record and all.
        await store.release_run("b", "e1", finished=False)
        await store.delete_batch("b")
        assert await store.runs() == []
        with pytest.raises(BatchNotFound):
            await store.get_batch("b")


async def test_a_batch_whose_run_lease_expired_is_deleted(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.acquire_run("b", "e1", LEASE)
        clock.advance(LEASE)
        await store.delete_batch("b")
        assert await store.runs() == []
        with pytest.raises(BatchNotFound):
            await store.delete_batch("b")


async def test_two_connections_race_for_a_run(open_backend: Opener, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        async with open_backend(clock) as one, open_backend(clock) as two:
            await one.create_batch("b", "echo")
            got: list[str] = []

            async def acquire(store: Store, owner: str) -> None:
                got.append(await store.acquire_run("b", owner, LEASE))

            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(acquire, (one, two)[i % 2], f"e{i}")
            assert len(got) == 10 and len(set(got)) == 1
            assert [run.owner for run in await two.runs()] == got[:1]


# -- a dead engine ----------------------------------------------------------------------


async def test_recover_engine_takes_back_what_it_held(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        for batch_id in "bcd":
            await store.create_batch(batch_id, "echo")
        await store.add_jobs("b", jobs_of(4, max_attempts=1))
        dead = await store.claim_jobs("b", 2, owner="e1", lease_seconds=LEASE)
        await store.apply([Complete(job_id=dead[1].job_id)], owner="e1")
        dead = dead[:1] + await store.claim_jobs("b", 1, owner="e1", lease_seconds=LEASE)
        alive = await store.claim_jobs("b", 1, owner="e2", lease_seconds=LEASE)
        await store.acquire_run("b", "e1", LEASE)
        await store.acquire_run("c", "e1", LEASE)
        await store.acquire_run("d", "e2", LEASE)
        clock.advance(1)  # nothing has expired

        assert await store.recover_engine("e1") == 2
        jobs = {job.job_id: job for job in await all_jobs(store, "b")}
        assert [(jobs[j.job_id].state, jobs[j.job_id].attempts) for j in dead] == [
            (JobState.PENDING, 0),
            (JobState.PENDING, 0),
        ]
        assert jobs[alive[0].job_id].state is JobState.ACTIVE
        assert await store.runs() == [
            RunRecord(batch_id="b", owner=None, expires_at=clock.now),
            RunRecord(batch_id="c", owner=None, expires_at=clock.now),
            RunRecord(batch_id="d", owner="e2", expires_at=clock.now - 1 + LEASE),
        ]
        # Nothing is left in e1's name, and the jobs are claimable again.
        assert await store.recover_engine("e1") == 0
        assert await store.renew_leases("e1", LEASE) == 0
        assert [run.owner for run in await store.runs()] == [None, None, "e2"]
        again = await store.claim_jobs("b", 9, owner="e3", lease_seconds=LEASE)
        assert sorted(j.job_id for j in again) == sorted(j.job_id for j in dead)
        assert [j.attempts for j in again] == [1, 1]
        assert await store.recover_expired_leases() == 0
        # The other engine's job was left alone: its outcome still counts.
        assert await store.apply([Complete(job_id=alive[0].job_id)], owner="e2") == {
            alive[0].job_id: JobState.COMPLETED
        }


async def test_only_the_lease_owner_records_outcomes(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        (job_id,) = (await store.add_jobs("b", jobs_of(1, max_attempts=3))).job_ids
        await store.claim_jobs("b", 1, owner="e1", lease_seconds=LEASE)
        # e1 is cut off: its lease runs out, the job is recovered, e2 claims it.
        clock.advance(LEASE)
        assert await store.recover_expired_leases() == 1
        (again,) = await store.claim_jobs("b", 1, owner="e2", lease_seconds=LEASE)
        assert again.job_id == job_id
        # e1 comes back: none of its outcomes lands on e2's job.
        cut_off = [
            Complete(job_id=job_id, result="e1"),
            Release(job_id=job_id, refund_attempt=True),
            Release(job_id=job_id, refund_attempt=False, error="crashed"),
            Fail(job_id=job_id, error="e1 failed"),
        ]
        for outcome in cut_off:
            assert await store.apply([outcome], owner="e1") == {}
        (job,) = await all_jobs(store, "b")
        assert (job.state, job.attempts, job.result, job.error) == (JobState.ACTIVE, 1, None, None)
        assert await store.renew_leases("e2", LEASE) == 1  # still under e2's lease
        assert await store.apply([Complete(job_id=job_id, result="e2")], owner="e2") == {
            job_id: JobState.COMPLETED
        }
        (job,) = await all_jobs(store, "b")
        assert (job.state, job.result) == (JobState.COMPLETED, "e2")
        assert await store.apply([Complete(job_id=job_id, result="e1")], owner="e1") == {}
        (job,) = await all_jobs(store, "b")
        assert job.result == "e2"


# -- the engine registry ----------------------------------------------------------------


def engine_record(engine_id: str, *running: str) -> EngineRecord:
    return EngineRecord(
        engine_id=engine_id,
        host="host-a",
        pid=100 + len(engine_id),
        boot_id="boot-1",
        max_batches=4,
        running_batches=running,
        last_seen=-1.0,  # the store's time replaces these
        expires_at=-1.0,
    )


async def test_engines_register_with_a_time_to_live(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.engines() == []
        first = await store.heartbeat(engine_record("e2"), 10)
        assert (first.last_seen, first.expires_at) == (clock.now, clock.now + 10)
        clock.advance(5)
        second = await store.heartbeat(engine_record("e1", "b", "c"), 10)
        assert await store.engines() == [second, first]
        assert second.running_batches == ("b", "c")
        clock.advance(6)  # e2 has expired: still listed, for its successor to find
        again = await store.heartbeat(engine_record("e1"), 10)
        assert await store.engines() == [again, first]
        assert again.running_batches == () and again.last_seen == clock.now
        assert [e.engine_id for e in await store.engines() if e.expires_at > clock.now] == ["e1"]
        await store.forget_engine("e2")
        await store.forget_engine("nobody")
        assert await store.engines() == [again]


# -- run owners in batch listings -------------------------------------------------------


async def test_batches_show_their_live_run_owner(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        for batch_id in "abcd":
            await store.create_batch(batch_id, "echo")
        await store.acquire_run("a", "e1", LEASE)
        await store.acquire_run("b", "e2", LEASE)
        await store.release_run("b", "e2", finished=False)
        await store.acquire_run("c", "e3", 1)
        clock.advance(1)
        listed = {batch.batch_id: batch.run_owner for batch in await store.list_batches()}
        assert listed == {"a": "e1", "b": None, "c": None, "d": None}
        for batch_id, owner in listed.items():
            assert (await store.get_batch(batch_id)).run_owner == owner


# -- startable batches ------------------------------------------------------------------


async def startable(store: Store, limit: int = 99, *, any_batch: bool = True) -> list[str]:
    return [b.batch_id for b in await store.startable_batches(limit, any_batch=any_batch)]


async def test_startable_batches_oldest_first_with_filters(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        batches = {
            "z-auto": {"autoStart": True},
            "y-plain": {},
            "x-flow": {"after": ["z-auto"]},
            "w-empty": {"autoStart": True},
            "v-not-auto": {"autoStart": False, "after": []},
            "u-flow": {"after": ["y-plain"]},
        }
        for batch_id, options in batches.items():
            await store.create_batch(batch_id, "echo", options)
            clock.advance(1)
            if batch_id != "w-empty":
                await store.add_jobs(batch_id, jobs_of(2))
        await store.add_jobs("x-flow", jobs_of(1, delay_seconds=10))
        await store.claim_jobs("x-flow", 2, owner="e", lease_seconds=LEASE)

        assert await startable(store) == ["z-auto", "y-plain", "v-not-auto", "u-flow"]
        assert await startable(store, any_batch=False) == ["z-auto", "u-flow"]
        assert await startable(store, 2) == ["z-auto", "y-plain"]
        assert await startable(store, 1, any_batch=False) == ["z-auto"]
        assert await startable(store, 0) == []
        clock.advance(10)  # x-flow's delayed job is due
        assert await startable(store, any_batch=False) == ["z-auto", "x-flow", "u-flow"]

        # A batch with a live run owner is not startable; handed over or
        # expired, it is again.
        await store.acquire_run("z-auto", "e1", LEASE)
        await store.acquire_run("y-plain", "e2", 1)
        assert await startable(store, 2) == ["x-flow", "v-not-auto"]
        await store.release_run("z-auto", "e1", finished=False)
        clock.advance(1)
        assert await startable(store, 3) == ["z-auto", "y-plain", "x-flow"]

        records = await store.startable_batches(1, any_batch=True)
        assert [(r.type, r.options, r.counts.pending, r.run_owner) for r in records] == [
            ("echo", {"autoStart": True}, 2, None)
        ]


async def test_startable_batches_follow_job_states(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.create_batch("c", "echo")
        assert await startable(store) == []
        await store.add_jobs("b", jobs_of(2, max_attempts=3))
        await store.add_jobs("c", jobs_of(1, delay_seconds=5))
        assert await startable(store) == ["b"]

        claimed = await store.claim_jobs("b", 2, owner="e", lease_seconds=LEASE)
        assert await startable(store) == []
        await store.apply(
            [
                Fail(job_id=claimed[0].job_id, error="x", retry_at=clock.now + 10),
                Release(job_id=claimed[1].job_id, refund_attempt=False),
            ],
            owner="e",
        )
        assert await startable(store) == ["b"]  # the released job is due at once
        assert [j.job_id for j in await claim(store, "b")] == [claimed[1].job_id]
        assert await startable(store) == []
        clock.advance(5)
        assert await startable(store) == ["c"]
        clock.advance(5)
        assert await startable(store) == ["b", "c"]

        again = await claim(store, "b")
        await store.apply([Fail(job_id=again[0].job_id, error="x")], owner="e")
        assert await startable(store) == ["c"]
        await store.apply([Complete(job_id=claimed[1].job_id)], owner="e")
        assert await store.retry_failed("b") == 1
        assert await startable(store) == ["b", "c"]

        await claim(store, "b")
        clock.advance(LEASE)
        assert await startable(store) == ["c"]
        assert await store.recover_expired_leases() == 1
        assert await startable(store) == ["b", "c"]
        await claim(store, "b")
        assert await store.recover_engine("e") == 1
        assert await startable(store) == ["b", "c"]

        await store.delete_batch("b")
        assert await startable(store) == ["c"]
        await claim(store, "c")
        assert await startable(store) == []
        assert (await store.counts("c")).active == 1


async def claim(store: Store, batch_id: str) -> list[JobRecord]:
    return await store.claim_jobs(batch_id, 9, owner="e", lease_seconds=LEASE)


@pytest.mark.parametrize("n", [1, 150])
async def test_startable_batches_page_through_their_index(store: Store, n: int) -> None:
    """The index is read a page at a time: a long one is walked to its end."""
    with trio.fail_after(DEADLINE):
        for i in range(n):
            await store.create_batch(f"b{i:03}", "echo")
            await store.add_jobs(f"b{i:03}", jobs_of(1))
            if i < n - 1:
                await store.acquire_run(f"b{i:03}", "e", LEASE)
        assert await startable(store) == [f"b{n - 1:03}"]
