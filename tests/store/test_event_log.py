"""The Redis store's event log: seqs given with the append, bursts appended
once, retention, reads that replay and reads that wait.

SQLite has no event log (``EventLog`` says why); that is checked here too.
"""

from __future__ import annotations

import pytest
import trio

from engine.store import EventLog
from engine.store.redis import open_redis_store
from engine.store.sqlite import open_sqlite_store
from protocols.errors import LocalProtocolError
from protocols.events import JobUpdate, ProcessingStarted, RunDone, RunError
from protocols.lifecycle import JobState
from tests.redis_server import redis_command
from tests.store.helpers import DEADLINE


def _started(*batch_ids: str) -> list[ProcessingStarted]:
    return [ProcessingStarted(batch_id=b) for b in batch_ids]


async def test_the_redis_store_has_an_event_log_and_sqlite_has_none(
    redis_url: str, db_path: str
) -> None:
    async with open_redis_store(redis_url) as redis, open_sqlite_store(db_path) as sqlite:
        assert isinstance(redis, EventLog)
        assert not isinstance(sqlite, EventLog)


async def test_appends_get_consecutive_seqs_across_publishers(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as a, open_redis_store(redis_url) as b:
            first = await a.append_events(_started("a", "b"), retain=100, publisher="A", burst=1)
            second = await b.append_events(_started("c"), retain=100, publisher="B", burst=1)
            third = await a.append_events(_started("d"), retain=100, publisher="A", burst=2)
            assert [e.seq for e in (*first, *second, *third)] == [1, 2, 3, 4]
            read = await b.read_events(0, limit=10)
    assert read == [*first, *second, *third]
    assert [e.data.batch_id for e in read] == ["a", "b", "c", "d"]


async def test_a_burst_sent_again_is_appended_once(redis_url: str) -> None:
    """A retry after a lost reply: same publisher, same burst number."""
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as log:
            sent = await log.append_events(_started("a", "b"), retain=100, publisher="A", burst=1)
            again = await log.append_events(_started("a", "b"), retain=100, publisher="A", burst=1)
            other = await log.append_events(_started("a"), retain=100, publisher="B", burst=1)
            assert again == sent
            assert [e.seq for e in other] == [3]
            assert len(await log.read_events(0, limit=10)) == 3


async def test_the_log_keeps_the_newest_events(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as log:
            for n in range(1, 5):
                await log.append_events(_started("a", "b", "c"), retain=5, publisher="A", burst=n)
            kept = await log.read_events(0, limit=100)
            assert [e.seq for e in kept] == [8, 9, 10, 11, 12]
            assert [e.seq for e in await log.read_events(10, limit=100)] == [11, 12]
            assert [e.seq for e in await log.read_events(8, limit=2)] == [9, 10]
            assert await log.read_events(12, limit=100) == []


async def test_events_travel_with_every_field(redis_url: str) -> None:
    data = [
        JobUpdate(batch_id="b", job_id="j", status=JobState.ACTIVE, progress=12.5),
        JobUpdate(batch_id="b", job_id="j", status=JobState.FAILED, error="boom\n", attempt=2),
        RunDone(batch_id="b", completed=3, failed=1, reason="cancelled"),
        RunDone(batch_id="b", completed=2**70, failed=2**64),
    ]
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as log:
            await log.append_events(data, retain=100, publisher="A", burst=1)
            assert [e.data for e in await log.read_events(0, limit=10)] == data


async def test_a_burst_with_an_event_json_cannot_carry_appends_nothing(redis_url: str) -> None:
    bad = RunError(batch_id="b", error="lone \ud800 surrogate")
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as log:
            with pytest.raises(LocalProtocolError):
                await log.append_events([*_started("a"), bad], retain=100, publisher="A", burst=1)
            assert await log.read_events(0, limit=10) == []


async def test_an_event_this_version_cannot_read_is_left_out(
    redis_url: str, redis_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as log:
            await log.append_events(_started("a"), retain=100, publisher="A", burst=1)
            # What a newer engine might write: an event type unknown here.
            reply = redis_command(
                redis_port, "XADD", "batchyard:events", "2-0", "e", '{"event":"new","data":{}}'
            )
            assert reply == b"$3\r\n2-0\r\n"
            redis_command(redis_port, "SET", "batchyard:events:seq", "2")
            await log.append_events(_started("c"), retain=100, publisher="A", burst=2)
            assert [e.seq for e in await log.read_events(0, limit=10)] == [1, 3]
    assert "event #2 in the log is left out" in caplog.text


async def test_a_read_waits_for_the_next_append(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as reader, open_redis_store(redis_url) as writer:
            got = []

            async def read() -> None:
                got.extend(await reader.read_events(0, limit=10, wait_seconds=4.0))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await trio.sleep(0.2)
                assert got == []
                # The waiting read holds a connection of its own: the store
                # still answers meanwhile.
                await reader.ping()
                await writer.append_events(_started("a"), retain=100, publisher="W", burst=1)
            assert [e.seq for e in got] == [1]


async def test_a_wait_with_nothing_new_returns_empty_and_can_be_cancelled(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as log:
            assert await log.read_events(0, limit=10, wait_seconds=0.1) == []
            with trio.move_on_after(0.2) as scope:
                await log.read_events(0, limit=10, wait_seconds=4.0)
            assert scope.cancelled_caught
            # The cancelled wait left nothing behind on the other connections.
            await log.append_events(_started("a"), retain=100, publisher="A", burst=1)
            assert [e.seq for e in await log.read_events(0, limit=10)] == [1]


async def test_a_closed_store_refuses_event_calls(redis_url: str) -> None:
    async with open_redis_store(redis_url) as log:
        pass
    with pytest.raises(trio.ClosedResourceError):
        await log.append_events(_started("a"), retain=100, publisher="A", burst=1)
    with pytest.raises(trio.ClosedResourceError):
        await log.read_events(0, limit=10)
