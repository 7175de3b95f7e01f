"""The replay ring keeps the newest events within a count and a byte bound."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.core.bus import EventBus
from engine.core.ring import ReplayRing, event_bytes
from protocols import events
from protocols.events import Event
from protocols.lifecycle import JobState


def _failed(seq: int, error: str) -> Event:
    data = events.JobUpdate(batch_id="b", job_id=f"j{seq}", status=JobState.FAILED, error=error)
    return Event(seq=seq, data=data)


@given(
    errors=st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=60),
    max_events=st.integers(min_value=1, max_value=20),
    max_bytes=st.integers(min_value=1, max_value=40_000),
)
def test_the_newest_events_within_both_bounds(
    errors: list[int], max_events: int, max_bytes: int
) -> None:
    ring = ReplayRing(max_events, max_bytes)
    published = [_failed(seq, "x" * n) for seq, n in enumerate(errors, start=1)]
    for event in published:
        ring.append(event)
    kept = list(ring)
    # A suffix of what was published, the newest always among it.
    assert kept == published[len(published) - len(kept) :]
    assert kept[-1] is published[-1]
    assert ring.bytes == sum(event_bytes(e) for e in kept)
    assert len(kept) <= max_events
    assert len(kept) == 1 or ring.bytes <= max_bytes
    # And no more was let go than the bounds asked.
    if len(kept) < len(published):
        one_more = published[len(published) - len(kept) - 1]
        assert len(kept) == max_events or ring.bytes + event_bytes(one_more) > max_bytes
    assert ring.first is kept[0]


def test_a_bus_replays_only_what_its_bytes_allow() -> None:
    bus = EventBus(ring_size=100, ring_bytes=3 * event_bytes(_failed(1, "e" * 1000)))
    for _ in range(5):
        bus.publish(_failed(1, "e" * 1000).data)
    assert bus.statistics().retained == 3
    with bus.subscribe(None, resume_from=0) as sub:
        assert not sub.replay_complete
