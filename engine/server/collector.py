"""The cyclic garbage collector's pace while the server runs.

Design notes
------------
CPython's collector starts a young-generation pass every 700 net
allocations of tracked objects and, every hundred of those, a full pass
over every tracked object. A server with a thousand WebSocket clients holds
hundreds of thousands of tracked objects (each connection's coroutine
frames, protocol state, cancel scopes), and every write to a client
allocates and frees a few dozen more (awaits, cancel statuses, outcomes),
so at the default pace the full passes come every second or so and each
stops the event loop for a large fraction of a second: measured with a
thousand subscribers, the collector took about half of the server's CPU
and its pauses were the tail of the delivery latency.

While it serves, the collector runs at ``_THRESHOLDS`` instead: a young
pass every 50,000 net allocations (most temporaries die by reference count
before that many accumulate, so passes become rare rather than larger), a
middle pass every 20 of those and a full pass every 10 middle ones, that
is after ten million net allocations, and only when the long-lived objects
grew by a quarter (CPython's own rule). What is alive when serving starts
(the modules, the engine's state) is frozen (``gc.freeze``): no pass scans
it again. Cyclic garbage is still collected, by the young passes where it
is created; only cycles that outlive a young pass wait longer.

The previous thresholds come back, and the frozen objects are handed back
to the collector, when the last of the servers of the process ends, so
that a process serving several times, or several servers at once (tests),
ends as it began, whatever order they end in.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["serving_collector"]

#: gc.set_threshold(young, middle, full) while serving; see the notes.
_THRESHOLDS = (50_000, 20, 10)


_serving = 0  # the servers of this process running now
_previous = gc.get_threshold()


@contextmanager
def serving_collector() -> Iterator[None]:
    """Run the collector at the server's pace inside the block: on the first
    entry, what is alive is frozen (after a full pass) and the thresholds
    become ``_THRESHOLDS``; when the last block of the process exits, the
    thresholds are restored and the frozen objects unfrozen."""
    global _serving, _previous
    if _serving == 0:
        _previous = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(*_THRESHOLDS)
    _serving += 1
    try:
        yield
    finally:
        _serving -= 1
        if _serving == 0:
            gc.set_threshold(*_previous)
            gc.unfreeze()
