"""The bus joined to the Redis store's event log: two buses are two engines.

Every test runs on real time against a real ``redis-server`` (the session's,
or one of its own when it kills it), each under an absolute deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from engine.core.bus import SLOW_SUBSCRIBER, EventBus, Subscription
from engine.errors import StoreUnavailable
from engine.store.event_log import EventLog
from engine.store.redis import open_redis_store
from protocols.events import Event, EventData, ProcessingStarted
from tests.redis_server import FAILED_CONNECTS_LEAK, free_port, running_redis

DEADLINE = 20


class CountingLog:
    """An event log that counts the appends passing through it, and can be
    made unreachable."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.appends: list[int] = []
        self.down = False
        self.refused = trio.Event()  # set once an append met the log down

    async def append_events(
        self, data: Sequence[EventData], *, retain: int, publisher: str, burst: int
    ) -> list[Event]:
        await trio.lowlevel.checkpoint()
        if self.down:
            self.refused.set()
            raise StoreUnavailable("down (simulated)")
        self.appends.append(len(data))
        return await self._log.append_events(data, retain=retain, publisher=publisher, burst=burst)

    async def read_events(
        self, after_seq: int, *, limit: int, wait_seconds: float = 0.0
    ) -> list[Event]:
        return await self._log.read_events(after_seq, limit=limit, wait_seconds=wait_seconds)


@asynccontextmanager
async def open_bus(log: EventLog, **changes: Any) -> AsyncIterator[EventBus]:
    """A bus joined to ``log``, its publisher and follower in a nursery of
    the test's, as an engine's are in the engine's."""
    bus = EventBus(**changes)
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.serve_log, log)
        yield bus
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_engine_bus(url: str, **changes: Any) -> AsyncIterator[EventBus]:
    """A bus on a store of its own: one engine's view of the cluster."""
    async with open_redis_store(url) as store, open_bus(store, **changes) as bus:
        yield bus


def _publish(bus: EventBus, batch_ids: Sequence[str]) -> None:
    for batch_id in batch_ids:
        assert bus.publish(ProcessingStarted(batch_id=batch_id)) is None


async def _receive(subscription: Subscription, count: int) -> list[Event]:
    return [await subscription.receive() for _ in range(count)]


def _seqs(events: Sequence[Event]) -> list[int]:
    return [event.seq for event in events]


async def test_each_engine_sees_every_engines_events_once_in_seq_order(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_engine_bus(redis_url) as a, open_engine_bus(redis_url) as b:
            with a.subscribe() as on_a, b.subscribe() as on_b:
                for n in range(10):
                    _publish(a, [f"a{2 * n}", f"a{2 * n + 1}"])
                    _publish(b, [f"b{n}"])
                    await trio.lowlevel.checkpoint()
                seen_on_a = await _receive(on_a, 30)
                seen_on_b = await _receive(on_b, 30)
                await a.flush()
                await b.flush()
                with trio.move_on_after(0.3):
                    extra = await on_a.receive()
                    pytest.fail(f"an event came twice or from nowhere: {extra}")
    assert _seqs(seen_on_a) == list(range(1, 31))
    assert seen_on_a == seen_on_b
    names = [e.data.batch_id for e in seen_on_a]
    # Each engine's own events keep the order it published them in.
    assert [name for name in names if name[0] == "a"] == [f"a{n}" for n in range(20)]
    assert [name for name in names if name[0] == "b"] == [f"b{n}" for n in range(10)]
    assert a.statistics().published == 20 and b.statistics().published == 10
    assert a.last_seq == b.last_seq == 30


async def test_replay_from_a_seq_works_on_every_engine(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_engine_bus(redis_url) as a:
            with a.subscribe() as live:
                _publish(a, "abcab")
                published = await _receive(live, 5)
            async with open_engine_bus(redis_url) as b:
                # b started after the events: it holds them all the same.
                for bus in (a, b):
                    with bus.subscribe(["a", "b"], resume_from=2) as replay:
                        assert replay.replay_complete
                        assert await _receive(replay, 2) == [published[3], published[4]]
                assert b.statistics().retained == 5


async def test_a_subscriber_ahead_of_its_engine_gets_nothing_twice(redis_url: str) -> None:
    """A client that saw seq n on another engine resumes here before this
    engine's follower reached n: it gets what follows n, and only that."""
    with trio.fail_after(DEADLINE):
        async with open_engine_bus(redis_url) as a:
            with a.subscribe(resume_from=3) as ahead:
                assert ahead.replay_complete
                _publish(a, "abcde")
                assert _seqs(await _receive(ahead, 2)) == [4, 5]


async def test_events_published_in_one_tick_take_one_round_trip(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as store:
            log = CountingLog(store)
            async with open_bus(log) as bus:
                _publish(bus, "x" * 500)
                await bus.flush()
                assert log.appends == [500]
                # Many publishers woken together publish within one tick.
                go = trio.Event()

                async def publisher() -> None:
                    await go.wait()
                    _publish(bus, "y" * 10)

                async with trio.open_nursery() as nursery:
                    for _ in range(20):
                        nursery.start_soon(publisher)
                    await trio.testing.wait_all_tasks_blocked()
                    go.set()
                await bus.flush()
                assert log.appends == [500, 200]
                assert bus.last_seq == 700


async def test_a_slow_subscriber_is_dropped_and_resumes(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_engine_bus(redis_url, buffer=3) as bus:
            slow = bus.subscribe()
            _publish(bus, "abcdef")
            await bus.flush()
            assert slow.dropped_reason == SLOW_SUBSCRIBER
            # What it had buffered before the drop is still delivered.
            assert _seqs([event async for event in slow]) == [1, 2, 3]
            with bus.subscribe(resume_from=slow.last_seq) as resumed:
                assert _seqs(await _receive(resumed, 3)) == [4, 5, 6]
            assert bus.statistics().dropped == 1


async def test_unsent_events_wait_for_the_store_up_to_a_bound(redis_url: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as store:
            log = CountingLog(store)
            async with open_bus(log, unsent_limit=5) as bus:
                sub = bus.subscribe()
                log.down = True
                _publish(bus, "ab")
                await log.refused.wait()  # the publisher holds this burst, retrying
                _publish(bus, "cdefghi")
                stats = bus.statistics()
                assert (stats.unsent, stats.lost) == (7, 2)
                log.down = False
                await bus.flush()
                events = await _receive(sub, 7)
    # The burst on the wire was kept; of the rest, the newest five.
    assert [e.data.batch_id for e in events] == list("abefghi")
    assert _seqs(events) == list(range(1, 8))
    assert bus.statistics().unsent == 0


@FAILED_CONNECTS_LEAK
async def test_the_follower_survives_a_redis_restart(
    tmp_path: Path, failed_connections: None
) -> None:
    """Redis killed and started again on the same port (keeping its data):
    what was published meanwhile arrives, on both engines, each once."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with trio.fail_after(DEADLINE):
        with running_redis(tmp_path, port, persistent=True) as server:
            async with open_engine_bus(url) as a, open_engine_bus(url) as b:
                with a.subscribe() as on_a, b.subscribe() as on_b:
                    _publish(a, "aaa")
                    _publish(b, "bbb")
                    assert _seqs(await _receive(on_a, 6)) == list(range(1, 7))
                    server.kill()
                    server.wait()
                    _publish(a, "cc")
                    _publish(b, "dd")
                    await trio.sleep(0.5)  # both tasks of both buses retry meanwhile
                    assert a.statistics().unsent == 2
                    with running_redis(tmp_path, port, persistent=True):
                        _publish(a, "e")
                        rest_on_a = await _receive(on_a, 5)
                        seen_on_b = await _receive(on_b, 11)
                        await a.flush()
                        await b.flush()
                        with trio.move_on_after(0.3):
                            extra = await on_a.receive()
                            pytest.fail(f"an event came twice: {extra}")
    assert _seqs(rest_on_a) == list(range(7, 12))
    assert seen_on_b[6:] == rest_on_a
    assert sorted(e.data.batch_id for e in rest_on_a) == list("ccdde")
