"""What the Redis store does beyond the contract: its URL, its server going away.

The contract itself is ``test_store.py``, run against every backend. Tests
that kill a server start one of their own, so the session's server stays up.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import coredis
import coredis.exceptions
import pytest
import trio
from coredis.retry import NoRetryPolicy

from engine.errors import BatchNotFound, StoreUnavailable
from engine.store import Complete, Fail, Release, open_store
from engine.store._redis_pool import SlotKeepingPool
from engine.store.redis import open_redis_store
from tests.redis_server import FAILED_CONNECTS_LEAK, free_port, redis_command, running_redis
from tests.store.helpers import DEADLINE, LEASE, FakeClock, jobs_of


async def test_open_store_opens_redis(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_store(redis_url) as store:
            await store.create_batch("b", "echo")
        async with open_store(redis_url) as store:
            assert (await store.get_batch("b")).type == "echo"


@FAILED_CONNECTS_LEAK
async def test_no_server(failed_connections: None) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with (
        trio.fail_after(DEADLINE),
        pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:\d+/0") as info,
    ):
        async with open_store(url):
            pass
    assert "hunter2" not in str(info.value)


async def test_errors_from_the_body_come_out_unwrapped(redis_url: str) -> None:
    with trio.fail_after(DEADLINE), pytest.raises(BatchNotFound):
        async with open_store(redis_url) as store:
            await store.get_batch("nope")


@FAILED_CONNECTS_LEAK
async def test_server_killed_and_restarted(
    tmp_path: Path, clock: FakeClock, failed_connections: None
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with trio.fail_after(DEADLINE):
        with running_redis(tmp_path, port) as server:
            async with open_redis_store(url, clock=clock) as store:
                await store.create_batch("b", "echo")
                server.kill()
                server.wait()
                with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}/0"):
                    await store.add_jobs("b", jobs_of(3))
                with pytest.raises(StoreUnavailable):
                    await store.ping()
                with running_redis(tmp_path, port):
                    # Persistence is off: the batch went with the old server.
                    await store.create_batch("b", "echo")
                    assert (await store.add_jobs("b", jobs_of(3))).enqueued == 3
                    claimed = await store.claim_jobs("b", 5, owner="e", lease_seconds=LEASE)
                    assert len(claimed) == 3
                    assert redis_command(port, "PING") == b"+PONG\r\n"


async def test_a_ping_to_a_server_that_stopped_answering_can_be_abandoned(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The health check gives up on a ping that hangs; the connection is
    still good for the next call, whose reply is not the late one."""
    port = free_port()
    with trio.fail_after(DEADLINE), running_redis(tmp_path, port) as server:
        async with open_redis_store(f"redis://127.0.0.1:{port}/0", clock=clock) as store:
            await store.create_batch("b", "echo")
            server.send_signal(signal.SIGSTOP)
            try:
                with trio.move_on_after(0.5) as waited:
                    await store.ping()
            finally:
                server.send_signal(signal.SIGCONT)
            assert waited.cancelled_caught
            await store.ping()
            assert (await store.get_batch("b")).type == "echo"


async def test_calls_to_a_server_that_stopped_answering_fail_in_bounded_time(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that neither answers nor closes (a cut link; here stopped)
    makes every call, shielded or not, raise ``StoreUnavailable`` once the
    connection's timeouts run out; once it answers again, so does the store."""
    monkeypatch.setattr("engine.store.redis.COMMAND_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr("engine.store.redis.CONNECT_TIMEOUT_SECONDS", 0.5)
    port = free_port()
    with trio.fail_after(DEADLINE), running_redis(tmp_path, port) as server:
        async with open_redis_store(f"redis://127.0.0.1:{port}/0", clock=clock) as store:
            await store.create_batch("b", "echo")
            server.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(StoreUnavailable, match="timed out"):
                    await store.get_batch("b")
                with pytest.raises(StoreUnavailable, match="timed out"):
                    await store.read_events(0, limit=10, wait_seconds=0.1)
                with pytest.raises(StoreUnavailable):
                    await store.add_jobs("b", jobs_of(1))
            finally:
                server.send_signal(signal.SIGCONT)
            assert (await store.get_batch("b")).type == "echo"
            assert await store.read_events(0, limit=10) == []


async def test_a_claim_whose_reply_was_lost_hands_its_jobs_to_the_next(
    redis_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim that ran on the server but whose reply never came took jobs
    that no caller knows of: the owner's next claim of the batch hands them
    out (up to its limit; the rest go back to pending, attempt refunded),
    and a claim after that does not hand them out again."""
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url, clock=clock) as store:
            await store.create_batch("b", "echo")
            await store.add_jobs("b", jobs_of(5))
            script = store._scripts["claim_jobs"]

            async def reply_lost(**kwargs: Any) -> Any:
                await script(**kwargs)
                raise coredis.exceptions.ConnectionError("Connection lost")

            monkeypatch.setitem(store._scripts, "claim_jobs", reply_lost)
            with pytest.raises(StoreUnavailable):
                await store.claim_jobs("b", 3, owner="e", lease_seconds=LEASE)
            monkeypatch.setitem(store._scripts, "claim_jobs", script)
            others = await store.claim_jobs("b", 9, owner="e2", lease_seconds=LEASE)
            found = await store.claim_jobs("b", 2, owner="e", lease_seconds=LEASE)
            assert (len(others), len(found)) == (2, 2)
            assert {job.attempts for job in found} == {1}
            assert (await store.counts("b")).pending == 1
            last = await store.claim_jobs("b", 9, owner="e", lease_seconds=LEASE)
            assert [job.attempts for job in last] == [1]
            ids = [job.job_id for job in others + found + last]
            assert len(set(ids)) == 5
            assert await store.claim_jobs("b", 9, owner="e", lease_seconds=LEASE) == []


async def test_a_connection_lost_while_taken_from_the_pool_gives_its_slot_back(
    tmp_path: Path,
) -> None:
    """A blocking read's connection lost with its server takes no pool slot
    with it: on a pool of one, the next call still gets a connection."""
    port = free_port()
    pool = SlotKeepingPool.from_url(
        f"redis://127.0.0.1:{port}/0", decode_responses=True, max_connections=1, timeout=1.0
    )
    client = coredis.Redis(
        decode_responses=True, retry_policy=NoRetryPolicy(), connection_pool=pool
    )
    with trio.fail_after(DEADLINE), running_redis(tmp_path, port) as server:
        async with client:
            async with trio.open_nursery() as nursery:

                async def read() -> None:
                    with pytest.raises(coredis.exceptions.ConnectionError):
                        await client.xread({"k": "0-0"}, block=5000)

                nursery.start_soon(read)
                await trio.sleep(0.2)
                server.kill()
                server.wait()
            with running_redis(tmp_path, port):
                assert await client.ping() == "PONG"


async def test_deleting_every_batch_leaves_no_index_behind(
    redis_url: str, redis_port: int, clock: FakeClock
) -> None:
    """Every index entry of a job goes with it: nothing leaks as jobs move."""
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url, clock=clock) as store:
            for batch_id in "bc":
                await store.create_batch(batch_id, "echo")
                await store.add_jobs(batch_id, jobs_of(6, key=None, delay_seconds=0))
                await store.add_jobs(batch_id, jobs_of(2, delay_seconds=60))
                ids = [
                    j.job_id
                    for j in await store.claim_jobs(batch_id, 5, owner="e", lease_seconds=1)
                ]
                await store.apply(
                    [
                        Complete(job_id=ids[0]),
                        Fail(job_id=ids[1], error="x"),
                        Fail(job_id=ids[2], error="x", retry_at=clock.now + 5),
                        Release(job_id=ids[3], refund_attempt=True),
                    ],
                    owner="e",
                )
                await store.acquire_run(batch_id, "e", 1)  # expired when deleted
            clock.advance(2)
            assert await store.recover_expired_leases() == 2
            await store.claim_jobs("b", 2, owner="e2", lease_seconds=LEASE)
            assert await store.queue_length() == 2 * 6 - 2  # 8 each, 1 done, 1 failed; 2 claimed
            for batch_id in "bc":
                await store.delete_batch(batch_id)
            assert await store.queue_length() == 0
            assert await store.renew_leases("e2", LEASE) == 0
    # What is left is the id counter and the (zero) pending counter.
    assert redis_command(redis_port, "DBSIZE") == b":2\r\n"


async def test_aclose_is_idempotent_and_final(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as store:
            await store.ping()
            await store.aclose()
            await store.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await store.ping()
            with pytest.raises(trio.ClosedResourceError):
                await store.create_batch("b", "echo")


def index_members(port: int, key: str) -> list[str]:
    """The members of one of the store's sorted sets, in order."""
    reply = redis_command(port, "ZRANGE", f"batchyard:{key}", "0", "-1").decode()
    return reply.split("\r\n")[2::2][: int(reply[1:].split("\r\n")[0])]


async def test_the_startable_indexes_hold_exactly_their_batches(
    redis_url: str, redis_port: int, clock: FakeClock
) -> None:
    """``queued`` lists the batches with a pending job, ``starts-itself`` the
    flagged ones, whatever moves the jobs, oldest batch first."""
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url, clock=clock) as store:

            def queued() -> list[str]:
                return index_members(redis_port, "queued")

            await store.create_batch("z", "echo", {"after": ["y"]})
            await store.create_batch("y", "echo")
            await store.create_batch("x", "echo", {"autoStart": True})
            assert index_members(redis_port, "starts-itself") == ["z", "x"]
            assert queued() == []
            await store.add_jobs("y", jobs_of(2, max_attempts=2))
            await store.add_jobs("z", jobs_of(1, delay_seconds=60))
            assert queued() == ["z", "y"]  # a job not yet due counts
            claimed = await store.claim_jobs("y", 9, owner="e", lease_seconds=1)
            assert queued() == ["z"]
            await store.apply(
                [
                    Fail(job_id=claimed[0].job_id, error="x", retry_at=clock.now + 5),
                    Complete(job_id=claimed[1].job_id),
                ],
                owner="e",
            )
            assert queued() == ["z", "y"]
            clock.advance(5)
            again = await store.claim_jobs("y", 9, owner="e", lease_seconds=1)
            await store.apply([Release(job_id=again[0].job_id, refund_attempt=False)], owner="e")
            assert queued() == ["z"]  # out of attempts: failed
            assert await store.retry_failed("y") == 1
            assert queued() == ["z", "y"]
            await store.claim_jobs("y", 9, owner="e", lease_seconds=1)
            assert queued() == ["z"]
            clock.advance(2)
            assert await store.recover_expired_leases() == 1
            assert queued() == ["z", "y"]
            await store.claim_jobs("y", 9, owner="e", lease_seconds=1)
            assert await store.recover_engine("e") == 1
            assert queued() == ["z", "y"]
            for batch_id in "zx":
                await store.delete_batch(batch_id)
            assert queued() == ["y"]
            assert index_members(redis_port, "starts-itself") == []
