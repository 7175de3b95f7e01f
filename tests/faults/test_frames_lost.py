"""How the load scenario counts lost frames: a seq one subscriber missed
while another got it counts once per subscriber that missed it."""

from __future__ import annotations

from faults.load import _lost
from faults.subscribers import _Subscriber, _summary


def _subscriber(*seqs: int) -> _Subscriber:
    subscriber = _Subscriber()
    subscriber.seqs = list(seqs)
    return subscriber


def test_a_subscriber_missing_a_frame_the_others_got_counts_it() -> None:
    summary = _summary([_subscriber(1, 2, 3, 4), _subscriber(2, 4, 5), _subscriber(2, 3, 4)])
    # Every one was connected from seq 2 to seq 4; only the second missed 3.
    assert summary["window"] == [2, 4]
    assert summary["seqs"] == [2, 3, 4]
    assert summary["lost"] == 1
    assert summary["out_of_order"] == 0


def test_frames_out_of_order_and_failed_subscribers_are_counted() -> None:
    failed = _subscriber()
    failed.error = "ConnectionClosed: 1013"
    summary = _summary([_subscriber(1, 3, 2), _subscriber(1, 2, 3), failed])
    assert summary["out_of_order"] == 1
    assert summary["errors"] == ["ConnectionClosed: 1013"]
    assert summary["connected"] == 2


def test_a_process_missing_what_another_got_loses_it_for_each_subscriber() -> None:
    first = {"window": [10, 20], "seqs": list(range(10, 21)), "connected": 3, "lost": 0}
    second = {"window": [12, 25], "seqs": [s for s in range(12, 26) if s != 15], "connected": 2}
    assert _lost([first, second | {"lost": 1}]) == 2 + 1
    assert _lost([first, first]) == 0
