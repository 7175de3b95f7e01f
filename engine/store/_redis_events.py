"""The Redis store's event log (``EventLog``): one stream whose entry ids are
the events' seqs.

Design notes
------------
Keys, under the store's ``PREFIX``::

    events                 stream: one entry per event, id ``<seq>-0``, field
                           ``e`` = the event's ``stored_frame``
    events:seq             string: the last seq given out
    events:burst:<pub>     string: ``"<burst> <last seq>"`` of the publisher's
                           latest append, expiring ``_BURST_MARK_SECONDS``
                           after it

A stream rather than a sorted set, because a stream is what can be waited
on: ``XREAD BLOCK`` wakes the follower the moment another engine appends,
where a sorted set would have to be polled. The entry id *is* the seq, so
"events after seq n" is ``XREAD … STREAMS events n-0`` with nothing to map,
and the stream's order is seq order by construction: Redis refuses an id not
above the last one. One script appends a burst: it reads the counter, adds
one entry per event, stores the counter, trims the stream to the newest
``retain`` entries (exact trimming, so replay keeps exactly what the
contract's ``event_ring_size`` says), and marks the burst as done for its
publisher. Being one script, it is atomic: no engine can slip a seq between
two of another's, and a retried burst finds its mark and is not appended
twice.

Waiting: coredis flags ``XREAD`` with ``BLOCK`` as a blocking command and
keeps the pooled connection it went out on to itself until the reply comes
(other calls take other connections); cancelling the wait drops that
connection, so a cancelled reader leaves no reply behind for someone else.
A wait is bounded by ``MAX_WAIT_SECONDS``, below the store's command timeout,
which would otherwise take a long quiet wait for a dead server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from engine.store._redis_errors import translate_redis_errors
from engine.store._redis_layout import PREFIX
from protocols.errors import RemoteProtocolError
from protocols.events import Event, EventData, parse_stored_frame, stored_frame

if TYPE_CHECKING:
    import coredis

__all__ = ["MAX_WAIT_SECONDS", "RedisEventLog", "RedisEventMethods"]

log = logging.getLogger(__name__)

_LOG = PREFIX + "events"

#: The longest one read waits for an event. The store's connections time a
#: reply out after 10 s (``COMMAND_TIMEOUT_SECONDS``); a wait stays well
#: below, and a reader that wants to wait longer reads again.
MAX_WAIT_SECONDS = 5.0

#: How long a publisher's last burst stays marked. A retry comes within the
#: outage that lost the reply; a day covers any outage an engine waits out,
#: and lets the marks of engines long gone expire.
_BURST_MARK_SECONDS = 86_400

_APPEND = f"""
local LOG, LAST = '{_LOG}', '{_LOG}:seq'
local mark = LAST .. ':burst:' .. ARGV[2]
local seen = redis.call('GET', mark)
if seen then
  local burst, last = string.match(seen, '^(%d+) (%d+)$')
  if burst == ARGV[3] then return tonumber(last) end
end
local seq = tonumber(redis.call('GET', LAST) or '0')
for i = 4, #ARGV do
  seq = seq + 1
  redis.call('XADD', LOG, string.format('%d-0', seq), 'e', ARGV[i])
end
local last = string.format('%d', seq)
redis.call('SET', LAST, last)
redis.call('XTRIM', LOG, 'MAXLEN', ARGV[1])
redis.call('SET', mark, ARGV[3] .. ' ' .. last, 'EX', {_BURST_MARK_SECONDS})
return seq
"""


class RedisEventLog:
    """The event log's operations on one client; the store delegates to it."""

    def __init__(self, client: coredis.Redis[str], *, where: str) -> None:
        self._client = client
        self._where = where
        self._append = client.register_script(_APPEND)

    async def append(
        self, data: Sequence[EventData], *, retain: int, publisher: str, burst: int
    ) -> list[Event]:
        """``EventLog.append_events``: one script, shielded as every store call.

        Cancellation: shielded: it returns or raises, never half-done.
        """
        if not data:
            return []
        frames = [stored_frame(item) for item in data]
        with translate_redis_errors(self._where), trio.CancelScope(shield=True):
            last = int(await self._append(args=[retain, publisher, burst, *frames]))
        first = last - len(data) + 1
        return [Event(seq=first + n, data=item) for n, item in enumerate(data)]

    async def read(self, after_seq: int, *, limit: int, wait_seconds: float) -> list[Event]:
        """``EventLog.read_events``: one ``XREAD``, waiting at most
        ``MAX_WAIT_SECONDS``.

        Cancellation: atomic; it only reads (a cancelled wait drops its
        connection).
        """
        wait_ms = round(min(wait_seconds, MAX_WAIT_SECONDS) * 1000)
        with translate_redis_errors(self._where):
            reply = await self._client.xread(
                {_LOG: f"{after_seq}-0"}, count=limit, block=wait_ms if wait_ms > 0 else None
            )
        events = []
        for entry in (reply or {}).get(_LOG, ()):
            seq = int(str(entry.identifier).partition("-")[0])  # decoded: "<seq>-0"
            try:
                events.append(parse_stored_frame(seq, entry.field_values["e"]))
            except RemoteProtocolError as exc:
                log.warning("event #%d in the log is left out: %s", seq, exc)
        return events


class RedisEventMethods:
    """The ``EventLog`` methods of ``RedisStore``, which gives them its
    client (None once closed) and its ``RedisEventLog``."""

    if TYPE_CHECKING:
        _client: coredis.Redis[str] | None
        _events: RedisEventLog

    async def append_events(
        self, data: Sequence[EventData], *, retain: int, publisher: str, burst: int
    ) -> list[Event]:
        """Append a burst of events (``EventLog.append_events`` says how).

        Cancellation: shielded: it returns or raises, never half-done.
        """
        return await self._event_log().append(
            data, retain=retain, publisher=publisher, burst=burst
        )

    async def read_events(
        self, after_seq: int, *, limit: int, wait_seconds: float = 0.0
    ) -> list[Event]:
        """Events after ``after_seq`` (``EventLog.read_events`` says how).

        Cancellation: atomic; it only reads.
        """
        return await self._event_log().read(after_seq, limit=limit, wait_seconds=wait_seconds)

    def _event_log(self) -> RedisEventLog:
        if self._client is None:
            raise trio.ClosedResourceError("the store is closed")
        return self._events
