"""The Redis store's connection pool: coredis's, keeping its size.

Design notes
------------
coredis's ``ConnectionPool`` (6.9) holds ``max_connections`` slots, each an
open connection or a free place (``None``) for one. A connection that dies
while it sits in the pool gives its slot back as a free place; one that dies
while it is out (a blocking ``XREAD`` waiting for events when the server goes
away, or timing out on a link that was cut) is dropped when it is released,
and its slot with it. Every outage would cost the event log's reader one
slot, and after ``max_connections`` of them no call could take a connection
again, whether the server answers or not: each would wait out the pool's
timeout and report the store unavailable for good. ``SlotKeepingPool`` gives
a dead connection's slot back when it is released.
"""

from __future__ import annotations

from typing import Any

import coredis

__all__ = ["SlotKeepingPool"]


class SlotKeepingPool(coredis.ConnectionPool[Any]):
    """A ``coredis.ConnectionPool`` whose slots outlive the connections that
    died while taken from it (see the module notes)."""

    def release(self, connection: Any) -> None:
        """Put ``connection`` back, or a free place in its stead if it died."""
        super().release(connection)
        free_places = self._available_connections
        if not connection.usable and not free_places.full():
            free_places.append_nowait(None)
