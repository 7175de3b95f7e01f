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
to the collector, when serving ends, so that a process serving several
times (tests) ends as it began.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["serving_collector"]

#: gc.set_threshold(young, middle, full) while serving; see the notes.
_THRESHOLDS = (50_000, 20, 10)


@contextmanager
def serving_collector() -> Iterator[None]:
    """Run the collector at the server's pace inside the block: what is alive
    on entry is frozen (after a full pass) and the thresholds are
    ``_THRESHOLDS``; on exit the previous thresholds are restored and the
    frozen objects unfrozen."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
