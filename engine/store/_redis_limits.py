"""The Redis store's cluster-wide limits: sliding windows of cost, and
concurrency slots with a lease, each one Lua script.

``RedisLimits`` adds the ``Store`` methods to ``RedisStore``. Keys, under
the store's prefix::

    rate:<key>     zset: the takes still in the window, scored by the time
                   they were taken (or moved to: ``delay_rate``); member
                   ``<cost>:<unique id>`` (unique, so two takes at one
                   instant are two members), or ``<cost>:h:<holder>`` for
                   a holder's latest take (an earlier one of the same
                   holder is renamed to a unique id)
    slots:<key>    zset: holder by lease expiry

A script trims what no longer counts (takes that left the window, slots
whose lease ran out) before it decides, so an engine that died frees its
slots one lease after its last renewal, and both keys expire by themselves
once nothing in them counts.

Clock: by default every script reads **Redis's** clock (``TIME``, allowed
before writes since scripts replicate their effects), so engines on
different hosts share one clock for limits whatever their own clocks say. A
store opened with a clock of its own (tests) sends that clock's reading
instead, so a test can drive windows by hand. Numbers cross into Lua as
``repr`` strings and come back as ``%.17g`` strings, exact both ways (a Lua
number handed to ``redis.call`` would be cut to 14 digits).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.store._limits import check_rate, check_slot, positive_delays
from engine.store._redis_layout import PREFIX
from engine.store._redis_values import number

__all__ = ["LIMIT_SCRIPTS", "RedisLimits"]

_PRELUDE = f"""
local P = '{PREFIX}'
local function fmt(x) return string.format('%.17g', x) end
-- The caller's time, or Redis's when the caller sends none.
local function now_or_server(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- Let the key live at least ``seconds`` more (never shorten its life).
local function keep_for(key, seconds)
  local ms = math.ceil(seconds * 1000) + 1
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or ttl < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# ARGV: key, limit, per_seconds, cost, unique id, now ('' = Redis's clock),
# holder ('' = none). '0' when taken; else the seconds until the cost would
# fit (as a string).
_TAKE_RATE = """
local key = P .. 'rate:' .. ARGV[1]
local limit, per, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_or_server(ARGV[6])
redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - per))
local takes = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local held = 0
for i = 1, #takes, 2 do held = held + tonumber(string.match(takes[i], '^[^:]+')) end
if held + cost <= limit then
  local name = ARGV[4] .. ':' .. ARGV[5]
  if ARGV[7] ~= '' then
    name = ARGV[4] .. ':h:' .. ARGV[7]
    for i = 1, #takes, 2 do
      local taken, holder = string.match(takes[i], '^([^:]+):h:(.*)$')
      if holder == ARGV[7] then
        redis.call('ZREM', key, takes[i])
        redis.call('ZADD', key, takes[i + 1], taken .. ':' .. ARGV[5])
      end
    end
  end
  redis.call('ZADD', key, fmt(now), name)
  keep_for(key, per)
  return '0'
end
for i = 1, #takes, 2 do
  held = held - tonumber(string.match(takes[i], '^[^:]+'))
  if held + cost <= limit then return fmt(math.max(tonumber(takes[i + 1]) + per - now, 0)) end
end
return fmt(per)
"""

# ARGV: key, then holder and delay (seconds, positive) pairs. Moves each
# holder's latest take later by its delay; a take that left the window stays
# gone.
_DELAY_RATE = """
local key = P .. 'rate:' .. ARGV[1]
local delays = {}
for i = 2, #ARGV, 2 do delays[ARGV[i]] = tonumber(ARGV[i + 1]) end
local takes = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local longest = 0
for i = 1, #takes, 2 do
  local delay = delays[string.match(takes[i], '^[^:]+:h:(.*)$') or '']
  if delay then
    redis.call('ZADD', key, 'XX', fmt(tonumber(takes[i + 1]) + delay), takes[i])
    longest = math.max(longest, delay)
  end
end
-- A take moved later counts that much longer: so must the key live.
local ttl = redis.call('PTTL', key)
if longest > 0 and ttl > 0 then keep_for(key, ttl / 1000 + longest) end
return 1
"""

# ARGV: key, limit, per_seconds, seconds, unique id, now ('' = Redis's
# clock). A take of the whole limit that leaves the window ``seconds`` from
# now (in the future when the hold outlasts the window).
_HOLD_RATE = """
local key = P .. 'rate:' .. ARGV[1]
local per, seconds = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_or_server(ARGV[6])
redis.call('ZADD', key, fmt(now + seconds - per), ARGV[2] .. ':' .. ARGV[5])
keep_for(key, math.max(per, seconds))
return 1
"""

# ARGV: key, holder, limit, lease seconds, now ('' = Redis's clock). 1 or 0.
_TAKE_SLOT = """
local key = P .. 'slots:' .. ARGV[1]
local lease, now = tonumber(ARGV[4]), now_or_server(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
local held = redis.call('ZSCORE', key, ARGV[2])
if not held and redis.call('ZCARD', key) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', key, fmt(now + lease), ARGV[2])
keep_for(key, lease)
return 1
"""

# ARGV: key, then holders.
_RELEASE_SLOTS = """
local key = P .. 'slots:' .. ARGV[1]
for i = 2, #ARGV do redis.call('ZREM', key, ARGV[i]) end
return 1
"""

# ARGV: key, lease seconds, now ('' = Redis's clock), then holders. How many renewed.
_RENEW_SLOTS = """
local key = P .. 'slots:' .. ARGV[1]
local lease, now = tonumber(ARGV[2]), now_or_server(ARGV[3])
local renewed = 0
for i = 4, #ARGV do
  local expires = redis.call('ZSCORE', key, ARGV[i])
  if expires and tonumber(expires) > now then
    redis.call('ZADD', key, fmt(now + lease), ARGV[i])
    renewed = renewed + 1
  end
end
if renewed > 0 then keep_for(key, lease) end
return renewed
"""

#: Script name → full source.
LIMIT_SCRIPTS = {
    name: _PRELUDE + body
    for name, body in {
        "take_rate": _TAKE_RATE,
        "delay_rate": _DELAY_RATE,
        "hold_rate": _HOLD_RATE,
        "take_slot": _TAKE_SLOT,
        "release_slots": _RELEASE_SLOTS,
        "renew_slots": _RENEW_SLOTS,
    }.items()
}


class RedisLimits:
    """The limit methods of ``RedisStore`` (see the module notes)."""

    if TYPE_CHECKING:
        _limit_clock: Callable[[], float] | None

        async def _run(self, script: str, *args: str | int) -> Any: ...

    def _limit_now(self) -> str:
        return "" if self._limit_clock is None else number(self._limit_clock())

    async def take_rate(
        self, key: str, limit: float, per_seconds: float, cost: float, *, holder: str | None = None
    ) -> float:
        """Take ``cost`` from the sliding window ``key`` if it fits.

        The window is on Redis's clock (see the module notes). Cancellation:
        shielded: it returns or raises, never half-done.

        Args:
            key: the window's name.
            limit: the most cost any window of ``per_seconds`` may hold.
            per_seconds: the window's length.
            cost: what this take weighs, at most ``limit``.
            holder: names the take, so ``delay_rate`` can move it later.

        Returns:
            0.0 when the cost was taken now; else the seconds until it would
            fit (nothing was taken).

        Raises:
            ValueError: an argument is out of range (cost above the limit).
        """
        check_rate(limit, per_seconds, cost)
        args = (number(limit), number(per_seconds), number(cost), uuid.uuid4().hex)
        return float(await self._run("take_rate", key, *args, self._limit_now(), holder or ""))

    async def delay_rate(self, key: str, delays: Mapping[str, float]) -> None:
        """Move the latest take of each holder in ``delays`` later in the
        window ``key`` by its delay in seconds (a delay, not a time, so the
        window stays on its clock); a holder whose take left the window (or
        never was), and a delay that is not positive, change nothing.

        Cancellation: shielded: it returns or raises, never half-done.
        """
        moves = positive_delays(delays)
        if moves:
            pairs = [arg for holder, seconds in moves for arg in (holder, number(seconds))]
            await self._run("delay_rate", key, *pairs)

    async def hold_rate(self, key: str, limit: float, per_seconds: float, seconds: float) -> None:
        """Fill the window ``key`` for ``seconds`` from now on its clock: a
        take of the whole ``limit`` that leaves it then (see
        ``Store.hold_rate``).

        Cancellation: shielded: it returns or raises, never half-done.

        Raises:
            ValueError: ``limit`` or ``per_seconds`` is not positive and finite.
        """
        check_rate(limit, per_seconds, limit)
        if math.isfinite(seconds) and seconds > 0:
            args = (number(limit), number(per_seconds), number(seconds), uuid.uuid4().hex)
            await self._run("hold_rate", key, *args, self._limit_now())

    async def take_slot(self, key: str, holder: str, limit: int, lease_seconds: float) -> bool:
        """Take a slot of ``key`` for ``holder`` under a lease, if one is free.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            True when ``holder`` holds a slot now (it already did: the lease
            is renewed); False when all ``limit`` slots are held.

        Raises:
            ValueError: ``limit`` below 1 or a lease that is not positive.
        """
        check_slot(limit, lease_seconds)
        args = (holder, limit, number(lease_seconds), self._limit_now())
        return bool(await self._run("take_slot", key, *args))

    async def release_slots(self, key: str, holders: Sequence[str]) -> None:
        """Free the slots of ``key`` that ``holders`` hold (unknown ones: nothing).

        Cancellation: shielded: it returns or raises, never half-done.
        """
        if holders:
            await self._run("release_slots", key, *holders)

    async def renew_slots(self, key: str, holders: Sequence[str], lease_seconds: float) -> int:
        """Push the lease of each slot of ``key`` that ``holders`` still hold
        to now + ``lease_seconds``; an expired slot stays lost.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            How many slots were renewed.
        """
        if not holders:
            return 0
        args = (number(lease_seconds), self._limit_now(), *holders)
        return int(await self._run("renew_slots", key, *args))
