"""What the engines of a cluster share in the Redis store: the engine
registry, run ownership and the queue of startable batches.

Design notes
------------
``RedisClusterMethods`` holds the ``Store`` methods of the cluster;
``RedisStore`` inherits them and registers ``CLUSTER_SCRIPTS`` with its own,
so each method is one script, one round trip, atomic on the server and
shielded from cancellation through the store's ``_run`` (see
``engine.store.redis``). The keys (``runs``, ``runs:expiry``,
``runs-of:<owner>``, ``engines``, ``queued``, ``starts-itself``) are
documented with the others in ``engine.store._redis_layout``, whose
prelude every script here starts with.

A run record is an entry of ``runs:expiry`` (every remembered run) with its
owner in ``runs``; a handed-over run has no owner there. ``runs-of:<owner>``
lets renewal and recovery find an engine's runs without a scan; an entry
that no longer names its owner in ``runs`` is dropped when met.

``startable_batches`` walks ``queued`` (batches with a pending job) or
``starts-itself`` oldest first, a page at a time, and checks each batch's
earliest pending job (the head of its ``due`` set) and run owner: never a
scan of jobs. ``queued`` is kept by the prelude's ``enter_pending`` and
``leave_pending``, which every job state change goes through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from engine.errors import BatchNotFound
from engine.store import _json
from engine.store._redis_layout import PRELUDE
from engine.store._redis_values import batch_record, number
from engine.store.records import BatchRecord, EngineRecord, RunRecord

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CLUSTER_SCRIPTS", "RedisClusterMethods"]

#: How many batch ids ``startable_batches`` reads from its index at a time.
_PAGE = 100

# ARGV: engine id, record (JSON).
_HEARTBEAT = """
redis.call('HSET', P .. 'engines', ARGV[1], ARGV[2])
return 1
"""

_ENGINES = """
return redis.call('HVALS', P .. 'engines')
"""

# ARGV: engine id.
_FORGET_ENGINE = """
redis.call('HDEL', P .. 'engines', ARGV[1])
return 1
"""

# ARGV: batch id, owner, now, lease expiry → the owner afterwards, or false
# for no such batch.
_ACQUIRE_RUN = """
if not batch_num(ARGV[1]) then return false end
local holder = live_owner(ARGV[1], ARGV[3])
if holder and holder ~= ARGV[2] then return holder end
local previous = redis.call('HGET', P .. 'runs', ARGV[1])
if previous and previous ~= ARGV[2] then
  redis.call('SREM', P .. 'runs-of:' .. previous, ARGV[1])
end
redis.call('HSET', P .. 'runs', ARGV[1], ARGV[2])
redis.call('ZADD', P .. 'runs:expiry', ARGV[4], ARGV[1])
redis.call('SADD', P .. 'runs-of:' .. ARGV[2], ARGV[1])
return ARGV[2]
"""

# ARGV: batch id, owner, finished (1/0), now → 1 if the owner held it, else 0.
_RELEASE_RUN = """
if redis.call('HGET', P .. 'runs', ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('SREM', P .. 'runs-of:' .. ARGV[2], ARGV[1])
redis.call('HDEL', P .. 'runs', ARGV[1])
if ARGV[3] == '1' then
  redis.call('ZREM', P .. 'runs:expiry', ARGV[1])
else
  redis.call('ZADD', P .. 'runs:expiry', ARGV[4], ARGV[1])
end
return 1
"""

# → per run: batch id, owner (or false), expiry.
_RUNS = """
local out = {}
local flat = redis.call('ZRANGE', P .. 'runs:expiry', 0, -1, 'WITHSCORES')
for i = 1, #flat, 2 do
  out[#out + 1] = {flat[i], redis.call('HGET', P .. 'runs', flat[i]), flat[i + 1]}
end
return out
"""

# ARGV: owner, now → how many jobs recovered.
_RECOVER_ENGINE = """
local recovered = 0
for _, jid in ipairs(redis.call('SMEMBERS', P .. 'owner:' .. ARGV[1])) do
  local job = load(jid)
  if job and job.owner == ARGV[1] then
    local available_at = redis.call('HGET', jk(jid), 'available_at')
    if move(job, 'expire', available_at, ARGV[2]) then
      redis.call('HSET', jk(jid), 'attempts', math.max(job.attempts - 1, 0))
      recovered = recovered + 1
    end
  end
end
redis.call('DEL', P .. 'owner:' .. ARGV[1])
for _, id in ipairs(redis.call('SMEMBERS', P .. 'runs-of:' .. ARGV[1])) do
  if redis.call('HGET', P .. 'runs', id) == ARGV[1] then
    redis.call('HDEL', P .. 'runs', id)
    redis.call('ZADD', P .. 'runs:expiry', ARGV[2], id)
  end
end
redis.call('DEL', P .. 'runs-of:' .. ARGV[1])
return recovered
"""

# ARGV: now, limit, any batch (1/0) → per batch: what _LIST_BATCHES returns.
_STARTABLE_BATCHES = f"""
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local index = P .. (ARGV[3] == '1' and 'queued' or 'starts-itself')
local out, start = {{}}, 0
while #out < limit do
  local ids = redis.call('ZRANGE', index, start, start + {_PAGE - 1})
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local n = batch_num(id)
    local due = redis.call('ZRANGE', bk(n, 'due'), 0, 0, 'WITHSCORES')[2]
    if #out < limit and due and tonumber(due) <= now and not live_owner(id, now) then
      local f = redis.call('HMGET', P .. 'batch:' .. id, 'type', 'created_at', 'options')
      out[#out + 1] = {{id, f[1], f[2], f[3], counts(n), false}}
    end
  end
  start = start + {_PAGE}
end
return out
"""

#: Script name → full source (the prelude, then the body).
CLUSTER_SCRIPTS = {
    name: PRELUDE + body
    for name, body in {
        "heartbeat": _HEARTBEAT,
        "engines": _ENGINES,
        "forget_engine": _FORGET_ENGINE,
        "acquire_run": _ACQUIRE_RUN,
        "release_run": _RELEASE_RUN,
        "runs": _RUNS,
        "recover_engine": _RECOVER_ENGINE,
        "startable_batches": _STARTABLE_BATCHES,
    }.items()
}


class RedisClusterMethods:
    """The cluster's ``Store`` methods on Redis (leases, the engine registry,
    run ownership, startable batches), for ``RedisStore``.

    Every method is one script, atomic on the server and shielded from
    cancellation: it returns or raises, never half-done. Every method raises
    ``StoreUnavailable`` when Redis cannot be reached.
    """

    if TYPE_CHECKING:
        _clock: Callable[[], float]

        async def _run(self, script: str, *args: str | int) -> Any: ...

    async def renew_leases(self, owner: str, lease_seconds: float) -> int:
        """Push the expiry of every job lease and run record ``owner`` holds
        to now + ``lease_seconds``.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            How many job leases were renewed.
        """
        expires = number(self._clock() + lease_seconds)
        return int(await self._run("renew_leases", owner, expires))

    async def recover_expired_leases(self) -> int:
        """Active jobs whose lease has run out back to pending, attempt refunded.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            How many jobs were recovered.
        """
        return int(await self._run("recover_expired_leases", number(self._clock())))

    async def heartbeat(self, record: EngineRecord, ttl_seconds: float) -> EngineRecord:
        """Register the engine, replacing its earlier record: seen now, live
        for ``ttl_seconds``.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            The record as stored (``last_seen`` and ``expires_at`` set).
        """
        now = self._clock()
        stored = attrs.evolve(record, last_seen=now, expires_at=now + ttl_seconds)
        await self._run("heartbeat", stored.engine_id, _json.dump(attrs.asdict(stored)))
        return stored

    async def engines(self) -> list[EngineRecord]:
        """Every registered engine, live or not, by engine id.

        Cancellation: shielded; it only reads.
        """
        records = []
        for text in await self._run("engines"):
            with _json.reading("engine record"):
                fields = _json.load(text)
                fields["running_batches"] = tuple(fields["running_batches"])
                records.append(EngineRecord(**fields))
        return sorted(records, key=lambda record: record.engine_id)

    async def forget_engine(self, engine_id: str) -> None:
        """Unregister the engine; an unknown one is left alone.

        Cancellation: shielded: it returns or raises, never half-done.
        """
        await self._run("forget_engine", engine_id)

    async def acquire_run(self, batch_id: str, owner: str, lease_seconds: float) -> str:
        """Make ``owner`` the batch's runner unless another owner's lease on
        it is live.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            ``owner`` when it took or already held the run (its lease now
            ends in ``lease_seconds``); else the engine that holds it.

        Raises:
            BatchNotFound: no such batch.
        """
        now = self._clock()
        args = (batch_id, owner, number(now), number(now + lease_seconds))
        holder = await self._run("acquire_run", *args)
        if holder is None:
            raise BatchNotFound(f"no batch {batch_id!r}")
        return str(holder)

    async def release_run(self, batch_id: str, owner: str, *, finished: bool) -> bool:
        """If ``owner`` holds the batch's run record: forget it when
        ``finished``, else hand it over (owner None, free at once).

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            Whether ``owner`` held it.
        """
        now = number(self._clock())
        return bool(await self._run("release_run", batch_id, owner, int(finished), now))

    async def runs(self) -> list[RunRecord]:
        """Every remembered run, by batch id.

        Cancellation: shielded; it only reads.
        """
        records = [
            RunRecord(batch_id=batch_id, owner=owner, expires_at=float(expires_at))
            for batch_id, owner, expires_at in await self._run("runs")
        ]
        return sorted(records, key=lambda record: record.batch_id)

    async def recover_engine(self, owner: str) -> int:
        """Take back what the (dead) engine ``owner`` held: its active jobs
        back to pending with the attempt refunded, its runs handed over.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            How many jobs went back to pending.
        """
        return int(await self._run("recover_engine", owner, number(self._clock())))

    async def startable_batches(self, limit: int, *, any_batch: bool) -> list[BatchRecord]:
        """Up to ``limit`` batches with a due pending job and no live run
        owner, oldest first; unless ``any_batch``, only those that start by
        themselves.

        Cancellation: shielded; it only reads.

        Returns:
            The batches with their counts (``run_owner`` None).
        """
        if limit <= 0:
            return []
        now = number(self._clock())
        rows = await self._run("startable_batches", now, limit, int(any_batch))
        return [batch_record(*row) for row in rows]
