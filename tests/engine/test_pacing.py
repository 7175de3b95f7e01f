"""Pacing an event client's writes by how many clients there are (on MockClock)."""

from __future__ import annotations

import contextlib
import math

import pytest
import trio
import trio.testing

from engine.core.bus import EventBus
from engine.server.pacing import WritePace, take_paced
from protocols.events import ProcessingStarted


def _clients(pace: WritePace, count: int) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    for _ in range(count):
        stack.enter_context(pace.client())
    return stack


def test_the_interval_grows_with_the_clients_up_to_a_tenth_of_a_second() -> None:
    pace = WritePace()
    assert pace.interval() == 0
    with _clients(pace, 10):
        assert pace.interval() == pytest.approx(0.0007)
        with _clients(pace, 5_000):
            assert pace.interval() == pytest.approx(0.1)
    assert pace.clients == 0


async def test_a_client_waits_the_interval_after_its_last_write_and_then_takes_it_all(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = EventBus()
    pace = WritePace()
    with _clients(pace, 2_000), bus.subscribe() as sub, trio.fail_after(5):
        bus.publish(ProcessingStarted(batch_id="a"))
        # Idle until now: written to at once.
        assert [e.seq for e in await take_paced(sub, pace, -math.inf)] == [1]
        written = trio.current_time()
        async with trio.open_nursery() as nursery:

            async def publish_later() -> None:
                await trio.sleep(0.01)
                bus.publish(ProcessingStarted(batch_id="a"))
                await trio.sleep(0.05)
                bus.publish(ProcessingStarted(batch_id="a"))

            nursery.start_soon(publish_later)
            taken = await take_paced(sub, pace, written)
        assert [e.seq for e in taken] == [2, 3]
        assert trio.current_time() - written == pytest.approx(0.1)


async def test_a_client_is_written_to_before_the_pace_once_half_its_buffer_is_queued(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = EventBus(buffer=10)
    pace = WritePace()
    with _clients(pace, 2_000), bus.subscribe() as sub, trio.fail_after(5):
        written = trio.current_time()
        async with trio.open_nursery() as nursery:

            async def publish_steadily() -> None:
                for _ in range(20):
                    await trio.sleep(0.001)
                    bus.publish(ProcessingStarted(batch_id="a"))

            nursery.start_soon(publish_steadily)
            taken = await take_paced(sub, pace, written)
            nursery.cancel_scope.cancel()
        # The pace says 0.1 s; 20 events in 0.02 s would overflow the buffer
        # by then, so the write comes at 5 queued (half of 10).
        assert [e.seq for e in taken] == [1, 2, 3, 4, 5]
        assert trio.current_time() - written == pytest.approx(0.005)
        assert sub.dropped_reason is None


async def test_a_client_dropped_while_it_waits_gets_nothing_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = EventBus(buffer=4)
    pace = WritePace()
    with _clients(pace, 1_000), bus.subscribe() as sub, trio.fail_after(5):
        bus.publish(ProcessingStarted(batch_id="a"))
        async with trio.open_nursery() as nursery:

            async def overflow() -> None:
                await trio.sleep(0.05)
                for _ in range(4):  # in one go: more than the buffer holds
                    bus.publish(ProcessingStarted(batch_id="a"))

            nursery.start_soon(overflow)
            with pytest.raises(trio.EndOfChannel):
                await take_paced(sub, pace, trio.current_time())
        assert sub.dropped_reason == "slow-subscriber"
