"""The Redis store's schedule firings: which due time of each schedule was
fired last, for every engine on the database.

Key, under the store's prefix::

    firings    hash: schedule name → due time of its last claimed firing
               (a ``repr`` float string, exact both ways)

``claim_firing`` is one Lua script: it compares and sets in one step, so
of the engines that claim one due time exactly one wins, and one claiming a
due time not later than the recorded one loses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.store._redis_layout import PREFIX
from engine.store._redis_values import number

__all__ = ["SCHEDULE_SCRIPTS", "RedisSchedules"]

# ARGV: name, due time. 1 when claimed, else 0.
_CLAIM_FIRING = f"""
local key = '{PREFIX}firings'
local last = redis.call('HGET', key, ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', key, ARGV[1], ARGV[2])
return 1
"""

# No arguments: name, due time, name, due time...
_LAST_FIRINGS = f"""
return redis.call('HGETALL', '{PREFIX}firings')
"""

#: Script name → full source.
SCHEDULE_SCRIPTS = {"claim_firing": _CLAIM_FIRING, "last_firings": _LAST_FIRINGS}


class RedisSchedules:
    """The schedule methods of ``RedisStore`` (see the module notes)."""

    if TYPE_CHECKING:

        async def _run(self, script: str, *args: str | int) -> Any: ...

    async def claim_firing(self, name: str, due_at: float) -> bool:
        """Claim the firing of ``name`` at ``due_at`` if it is later than the
        last one claimed; one script.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            Whether this call claimed it.
        """
        return bool(await self._run("claim_firing", name, number(due_at)))

    async def last_firings(self) -> dict[str, float]:
        """The due time of each schedule's last claimed firing, by name.

        Cancellation: shielded: it returns or raises, never half-done.
        """
        flat = await self._run("last_firings")
        return {name: float(due) for name, due in zip(flat[::2], flat[1::2], strict=True)}
