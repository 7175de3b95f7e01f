"""The event bus: seq numbers, filters, slow subscribers, replay and close."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import pytest
import trio
import trio.testing

from engine.core.bus import BusStatistics, EventBus, Subscription
from protocols.events import Event, ProcessingProgress, ProcessingStarted, RunDone


def _publish(bus: EventBus, batch_ids: Iterable[str]) -> list[Event]:
    return [bus.publish(ProcessingStarted(batch_id=b)) for b in batch_ids]


async def _drain(sub: Subscription) -> list[int]:
    """The seqs a subscription still yields until it ends."""
    with trio.fail_after(5):
        return [event.seq async for event in sub]


async def test_seq_starts_at_one_and_increases_by_one() -> None:
    bus = EventBus()
    assert bus.last_seq == 0
    with bus.subscribe() as sub:
        published = _publish(bus, "abcab")
        assert [e.seq for e in published] == [1, 2, 3, 4, 5]
        assert bus.last_seq == 5
        assert [e.data.batch_id for e in published] == list("abcab")
        bus.close()
        assert await _drain(sub) == [1, 2, 3, 4, 5]
        assert sub.last_seq == 5


async def test_a_refused_publish_uses_up_no_seq() -> None:
    bus = EventBus()
    _publish(bus, "a")
    with pytest.raises(TypeError, match="data"):
        bus.publish({"batchId": "a"})  # type: ignore[arg-type]
    assert bus.publish(RunDone(batch_id="a", completed=0, failed=0)).seq == 2
    assert bus.statistics().published == 2
    with bus.subscribe(resume_from=0) as sub:
        assert sub.replay_complete
        bus.close()
        assert await _drain(sub) == [1, 2]


async def test_filters_select_batches_and_none_means_all() -> None:
    bus = EventBus()
    only_a = bus.subscribe(["a"])
    a_and_c = bus.subscribe({"a", "c"})
    everything = bus.subscribe()
    _publish(bus, "abcba")
    bus.close()
    assert await _drain(only_a) == [1, 5]
    assert await _drain(a_and_c) == [1, 3, 5]
    assert await _drain(everything) == [1, 2, 3, 4, 5]


async def test_subscribe_and_unsubscribe_change_a_live_filter() -> None:
    bus = EventBus()
    sub = bus.subscribe(["a"])
    _publish(bus, "ab")  # 1, 2
    sub.subscribe(["b"])
    _publish(bus, "ab")  # 3, 4
    sub.unsubscribe(["a"])
    _publish(bus, "ab")  # 5, 6
    bus.close()
    assert await _drain(sub) == [1, 3, 4, 6]


async def test_unfiltered_subscription_ignores_subscribe_and_narrows_on_unsubscribe() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    sub.subscribe(["x"])
    _publish(bus, "ab")  # 1, 2: still every batch
    sub.unsubscribe(["a"])
    _publish(bus, "ab")  # 3, 4: now nothing
    sub.subscribe(["b"])
    _publish(bus, "ab")  # 5, 6
    bus.close()
    assert await _drain(sub) == [1, 2, 6]


async def test_a_full_buffer_drops_that_subscriber_only_and_never_blocks() -> None:
    bus = EventBus(buffer=2)
    slow = bus.subscribe()
    fast = bus.subscribe()
    received: list[int] = []

    async def read_fast() -> None:
        async for event in fast:
            received.append(event.seq)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_fast)
            for n in range(1, 11):
                with trio.testing.assert_no_checkpoints():
                    bus.publish(ProcessingProgress(batch_id="a", completed=n, failed=0, total=10))
                # The fast reader empties its buffer before the next event.
                await trio.testing.wait_all_tasks_blocked()
                assert slow.dropped_reason == (None if n <= 2 else "slow-subscriber")
            bus.close()
    assert received == list(range(1, 11))
    assert fast.dropped_reason == "shutdown"
    assert bus.statistics().dropped == 1
    # What the slow one had buffered before the drop is still delivered.
    assert await _drain(slow) == [1, 2]
    assert slow.last_seq == 2


async def test_a_burst_beyond_the_buffer_drops_a_reader_that_cannot_run() -> None:
    bus = EventBus(buffer=3)
    sub = bus.subscribe()
    _publish(bus, "aaa")
    before = sub.dropped_reason
    _publish(bus, "a")
    assert (before, sub.dropped_reason) == (None, "slow-subscriber")
    assert bus.statistics().subscribers == 0
    assert await _drain(sub) == [1, 2, 3]


async def test_a_dropped_subscriber_resumes_with_exactly_the_missed_events() -> None:
    bus = EventBus(buffer=2)
    slow = bus.subscribe(["a"])
    _publish(bus, "abababa")  # a at 1, 3, 5, 7
    assert slow.dropped_reason == "slow-subscriber"
    assert await _drain(slow) == [1, 3]
    with bus.subscribe(["a"], resume_from=slow.last_seq) as resumed:
        assert resumed.replay_complete
        assert resumed.dropped_reason is None
        # The replay (2 events) plus a full buffer of live ones fits.
        _publish(bus, "aba")  # a at 8, 10
        assert resumed.dropped_reason is None
        bus.close()
        assert await _drain(resumed) == [5, 7, 8, 10]


async def test_a_replay_longer_than_the_buffer_does_not_drop_the_subscriber() -> None:
    bus = EventBus(buffer=1)
    _publish(bus, "a" * 20)
    with bus.subscribe(resume_from=4) as sub:
        _publish(bus, "a")
        assert sub.dropped_reason is None
        bus.close()
        assert await _drain(sub) == list(range(5, 22))


@pytest.mark.parametrize(
    ("resume_from", "complete", "replayed"),
    [(0, False, [8, 9, 10]), (6, False, [8, 9, 10]), (7, True, [8, 9, 10]), (9, True, [10])],
)
async def test_replay_complete_says_whether_the_ring_still_holds_the_gap(
    resume_from: int, complete: bool, replayed: list[int]
) -> None:
    bus = EventBus(ring_size=3)
    _publish(bus, "a" * 10)
    assert bus.statistics().retained == 3
    sub = bus.subscribe(resume_from=resume_from)
    assert sub.replay_complete is complete
    bus.close()
    assert await _drain(sub) == replayed


async def test_resume_from_the_newest_seq_replays_nothing() -> None:
    bus = EventBus()
    _publish(bus, "ab")
    sub = bus.subscribe(resume_from=2)
    assert sub.replay_complete
    _publish(bus, "a")
    bus.close()
    assert await _drain(sub) == [3]


async def test_close_ends_subscriptions_after_they_drain_their_buffer() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiting = bus.subscribe()
    ended: list[list[int]] = []

    async def wait_for_end() -> None:
        ended.append(await _drain(waiting))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_end)
            await trio.testing.wait_all_tasks_blocked()
            _publish(bus, "ab")
            await trio.testing.wait_all_tasks_blocked()
            _publish(bus, "c")
            bus.close()
    assert ended == [[1, 2, 3]]
    assert sub.dropped_reason == waiting.dropped_reason == "shutdown"
    assert bus.statistics().subscribers == 0
    assert bus.statistics().dropped == 0
    assert await _drain(sub) == [1, 2, 3]
    with pytest.raises(trio.EndOfChannel):
        await sub.receive()
    bus.close()
    assert sub.dropped_reason == "shutdown"


async def test_subscribing_to_a_closed_bus_gets_the_replay_then_ends() -> None:
    bus = EventBus()
    _publish(bus, "ab")
    bus.close()
    late = bus.subscribe(resume_from=1)
    assert late.dropped_reason == "shutdown"
    assert bus.statistics().subscribers == 0
    assert await _drain(late) == [2]


async def test_statistics_is_a_frozen_snapshot() -> None:
    bus = EventBus(ring_size=4, buffer=1)
    assert bus.statistics() == BusStatistics(
        last_seq=0, retained=0, subscribers=0, published=0, dropped=0
    )
    kept = bus.subscribe(["b"])
    dropped = bus.subscribe(["a"])
    _publish(bus, "aaaaaa")
    snapshot = bus.statistics()
    assert snapshot == BusStatistics(last_seq=6, retained=4, subscribers=1, published=6, dropped=1)
    assert dropped.dropped_reason == "slow-subscriber"
    assert kept.dropped_reason is None
    kept.close()
    assert bus.statistics().subscribers == 0
    assert snapshot.subscribers == 1
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snapshot.dropped = 0  # type: ignore[misc]


async def test_the_context_manager_removes_the_subscription() -> None:
    bus = EventBus()
    with pytest.raises(RuntimeError, match="consumer failed"), bus.subscribe() as sub:
        assert bus.statistics().subscribers == 1
        raise RuntimeError("consumer failed")
    assert bus.statistics().subscribers == 0
    _publish(bus, "a")
    assert bus.statistics().dropped == 0
    with pytest.raises(trio.EndOfChannel):
        await sub.receive()
    sub.close()
    assert bus.statistics().subscribers == 0


async def test_a_cancelled_receive_loses_no_event() -> None:
    bus = EventBus()
    with bus.subscribe() as sub, trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sub.receive)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        _publish(bus, "a")
        assert (await sub.receive()).seq == 1
        assert sub.last_seq == 1


def test_receive_nowait_takes_what_is_queued_then_says_why_it_stopped() -> None:
    bus = EventBus(buffer=2)
    sub = bus.subscribe()
    with pytest.raises(trio.WouldBlock):
        sub.receive_nowait()
    _publish(bus, "ab")
    assert [sub.receive_nowait().seq, sub.receive_nowait().seq] == [1, 2]
    assert sub.last_seq == 2
    with pytest.raises(trio.WouldBlock):
        sub.receive_nowait()
    _publish(bus, "cde")
    assert sub.dropped_reason == "slow-subscriber"
    assert [sub.receive_nowait().seq, sub.receive_nowait().seq] == [3, 4]
    with pytest.raises(trio.EndOfChannel):
        sub.receive_nowait()
    sub.close()
    with pytest.raises(trio.EndOfChannel):
        sub.receive_nowait()


async def test_an_observer_sees_each_event_after_the_subscribers_were_offered_it() -> None:
    bus = EventBus(buffer=1)
    seen: list[tuple[int, int]] = []
    bus.observe(lambda event: seen.append((event.seq, bus.statistics().dropped)))
    with bus.subscribe():
        _publish(bus, "aa")
    # The second event overflowed the subscriber before the observer saw it.
    assert seen == [(1, 0), (2, 1)]


async def test_receive_queued_takes_everything_queued_at_once() -> None:
    bus = EventBus(buffer=3)
    with bus.subscribe(["a"]) as sub, trio.fail_after(5):
        with pytest.raises(trio.WouldBlock):
            sub.receive_queued_nowait()
        _publish(bus, "abaa")
        assert [e.seq for e in await sub.receive_queued()] == [1, 3, 4]
        assert sub.last_seq == 4
        # The queue emptied, so three more fit in the buffer of three.
        _publish(bus, "aaa")
        assert sub.dropped_reason is None
        assert [e.seq for e in sub.receive_queued_nowait()] == [5, 6, 7]


async def test_receive_queued_waits_for_the_next_publication() -> None:
    bus = EventBus()
    with bus.subscribe() as sub, trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            taken: list[list[int]] = []

            async def take() -> None:
                taken.append([e.seq for e in await sub.receive_queued()])

            nursery.start_soon(take)
            await trio.testing.wait_all_tasks_blocked()
            assert taken == []
            _publish(bus, "ab")
        assert taken == [[1, 2]]


async def test_a_cancelled_receive_queued_loses_no_event() -> None:
    bus = EventBus()
    with bus.subscribe() as sub, trio.fail_after(5):
        _publish(bus, "a")
        with trio.CancelScope() as scope:
            scope.cancel()
            await sub.receive_queued()
        _publish(bus, "b")
        assert [e.seq for e in await sub.receive_queued()] == [1, 2]


async def test_wait_queued_returns_when_the_subscription_ends() -> None:
    bus = EventBus(buffer=1)
    with bus.subscribe() as sub, trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sub.wait_queued)
            await trio.testing.wait_all_tasks_blocked()
            bus.close()
        with pytest.raises(trio.EndOfChannel):
            await sub.receive_queued()
    closed = bus.subscribe()
    closed.close()
    with trio.fail_after(5):
        await closed.wait_queued()


async def test_a_changed_filter_moves_the_subscription_between_batches() -> None:
    bus = EventBus()
    sub = bus.subscribe(["a"])
    other = bus.subscribe(["a"])
    sub.subscribe(["b"])
    sub.unsubscribe(["a"])
    _publish(bus, "ab")
    other.close()
    _publish(bus, "a")
    everything = bus.subscribe()
    everything.unsubscribe(["b"])
    _publish(bus, "b")
    everything.subscribe(["a"])
    _publish(bus, "ab")
    bus.close()
    assert await _drain(sub) == [2, 4, 6]
    assert await _drain(everything) == [5]
    assert bus.statistics().subscribers == 0
