"""The Redis store's key layout, and the Lua prelude every script runs on.

Design notes
------------
Every ``RedisStore`` method is one script (or one command), so every change
that touches several keys is one atomic step: Redis runs a script to the end
before it serves anything else. A script that fails half-way keeps what it
wrote before the failure, so the Python side validates and encodes every
argument before it sends one; what is left to fail here are bugs.

Keys, all under ``PREFIX``. Batch ids are arbitrary strings, so only the
batch's own hash is named by its id; the keys of its jobs are named by the
batch's *number* (from the one counter ``seq``), which cannot collide::

    seq                   counter: batch numbers and job seqs (insertion order)
    batches               zset: batch id by number (oldest first)
    batch:<id>            hash: num, type, created_at, options, and per
                          engine claim:<owner>: its latest claim's token
                          and job ids (``claim_jobs``)
    pending               counter: pending jobs of every batch (queue_length)
    b<n>:all              zset: job id by seq (pages of every job)
    b<n>:s:<state>        zset: job id by seq, one per state (pages, counts)
    b<n>:ready            zset: due pending jobs, all with score 0, ordered by
                          member ``ord`` = rank(priority) + hex(seq) + job id
    b<n>:delayed          zset: pending jobs not yet due, by available_at
    b<n>:due              zset: every pending job by available_at (next_due_at)
    b<n>:keys             hash: idempotency key → job id
    j:<job id>            hash: the job's fields (``JOB_FIELDS`` and the index
                          fields n, seq, ord, lease_owner, lease_expires)
    leases                zset: active job id by lease expiry
    owner:<owner>         set: job ids whose lease the owner holds
    queued                zset: batch id by number, every batch with a
                          pending job (kept by ``enter_pending`` and
                          ``leave_pending``: startable_batches)
    starts-itself         zset: batch id by number, the batches that start
                          by themselves (``base.starts_by_itself``)
    runs                  hash: batch id → owner of its run record; absent
                          once the run is handed over
    runs:expiry           zset: batch id by its run lease's expiry (by the
                          time of the handover once handed over): every
                          remembered run
    runs-of:<owner>       set: batch ids whose run record the owner holds
    engines               hash: engine id → its ``EngineRecord`` as JSON
    types:<state>         hash: job type → how many jobs of that type (the
                          job's own) are in the state; a type with none is
                          no field (``count_type``: counts_by_type)
    types:counted         flag: the ``types:`` hashes count every job (set
                          by the first counts_by_type, which recounts
                          jobs stored before the hashes were kept)

``ready`` orders by member because a score (a double) cannot hold a 64-bit
priority exactly: ``rank`` is ``2**63 - 1 - priority`` in 16 hex digits,
computed in Python, so the highest priority sorts first and then the
lowest seq. A delayed job moves to ``ready`` in the first claim after it is
due. Counts are the cardinalities of the per-state sets, and queue length a
counter, so neither walks jobs; so are the jobs per type and state
(``types:<state>``), kept by ``move``, ``insert_job`` and ``delete_batch``.

Every state change goes through the Lua function ``move``, which looks the
pair (state, event) up in ``MOVES``: a Lua rendering of
``protocols.lifecycle.TRANSITIONS``. A script never moves a job along a pair
the table lacks, as the SQLite statements never do.

Time: scripts take the caller's wall-clock ``now`` as an argument (the
store's ``clock``), like the SQLite store, and floats travel as ``repr``
strings, which Redis, Lua and Python all read back exactly.

The scripts of batches and jobs are in ``engine.store._redis_scripts``,
those of the cluster (engine registry, run ownership, startable batches) in
``engine.store._redis_cluster``, all on this prelude.

Scripts compute the keys of jobs from their ids, so the store needs a single
Redis server (or a primary), not Redis Cluster.
"""

from __future__ import annotations

from protocols.lifecycle import TRANSITIONS, JobState

__all__ = ["JOB_FIELDS", "PREFIX", "PRELUDE", "RANK_DIGITS"]

PREFIX = "batchyard:"

#: ``rank`` is a 16-hex-digit rendering of a signed 64-bit priority.
RANK_DIGITS = 16

#: The fields of a job that scripts hand back, in this order.
JOB_FIELDS = (
    "seq",
    "job_id",
    "batch",
    "type",
    "state",
    "payload",
    "attempts",
    "max_attempts",
    "key",
    "priority",
    "result",
    "error",
    "traceback",
    "created_at",
    "available_at",
    "cost",
    "started_at",
    "finished_at",
    "progress",
    "timeout_seconds",
)


def _lua_moves() -> str:
    rows = []
    for source, moves in TRANSITIONS.items():
        pairs = ", ".join(
            f"['{event.value}'] = '{target.value}'" for event, target in moves.items()
        )
        rows.append(f"  ['{source.value}'] = {{{pairs}}},")
    return "local MOVES = {\n" + "\n".join(rows) + "\n}"


PRELUDE = f"""
local P = '{PREFIX}'
local PENDING, ACTIVE = '{JobState.PENDING.value}', '{JobState.ACTIVE.value}'
local FAILED = '{JobState.FAILED.value}'
{_lua_moves()}
local JOB_FIELDS = {{{", ".join(f"'{name}'" for name in JOB_FIELDS)}}}
local ORD_HEAD = {RANK_DIGITS + 16}
local STATES = {{{", ".join(f"'{state.value}'" for state in JobState)}}}

local function bk(n, part) return P .. 'b' .. n .. ':' .. part end
local function jk(jid) return P .. 'j:' .. jid end
local function batch_num(id) return redis.call('HGET', P .. 'batch:' .. id, 'num') end
local function job_fields(jid) return redis.call('HMGET', jk(jid), unpack(JOB_FIELDS)) end

-- An optional string travels as 'n' (none) or 's' .. value.
local function set_opt(jid, field, value)
  if value == 'n' then redis.call('HDEL', jk(jid), field)
  else redis.call('HSET', jk(jid), field, string.sub(value, 2)) end
end

local function load(jid)
  local f = redis.call('HMGET', jk(jid), 'state', 'n', 'seq', 'ord', 'attempts',
    'max_attempts', 'lease_owner', 'batch', 'type')
  if not f[1] then return nil end
  return {{jid = jid, state = f[1], n = f[2], seq = f[3], ord = f[4],
    attempts = tonumber(f[5]), max_attempts = tonumber(f[6]), owner = f[7], batch = f[8],
    type = f[9]}}
end

-- One more (by = 1) or one fewer (by = -1) job of the type in the state.
local function count_type(type, state, by)
  local key = P .. 'types:' .. state
  if redis.call('HINCRBY', key, type, by) <= 0 then redis.call('HDEL', key, type) end
end

local function enter_pending(job, available_at, now)
  redis.call('ZADD', bk(job.n, 'due'), available_at, job.jid)
  if tonumber(available_at) <= tonumber(now) then
    redis.call('ZADD', bk(job.n, 'ready'), 0, job.ord)
  else
    redis.call('ZADD', bk(job.n, 'delayed'), available_at, job.jid)
  end
  redis.call('INCR', P .. 'pending')
  redis.call('ZADD', P .. 'queued', job.n, job.batch)
end

local function leave_pending(job)
  redis.call('ZREM', bk(job.n, 'due'), job.jid)
  redis.call('ZREM', bk(job.n, 'delayed'), job.jid)
  redis.call('ZREM', bk(job.n, 'ready'), job.ord)
  redis.call('DECR', P .. 'pending')
  if redis.call('ZCARD', bk(job.n, 'due')) == 0 then
    redis.call('ZREM', P .. 'queued', job.batch)
  end
end

-- The owner of the batch's run record while its lease is live, or false.
local function live_owner(id, now)
  local owner = redis.call('HGET', P .. 'runs', id)
  if owner and tonumber(redis.call('ZSCORE', P .. 'runs:expiry', id)) > tonumber(now) then
    return owner
  end
  return false
end

local function drop_lease(job)
  redis.call('ZREM', P .. 'leases', job.jid)
  if job.owner then redis.call('SREM', P .. 'owner:' .. job.owner, job.jid) end
  redis.call('HDEL', jk(job.jid), 'lease_owner', 'lease_expires')
end

-- Moves the job along (state, event) if the table has the pair: its state,
-- its per-state set, its pending indexes and its lease. Returns the new state,
-- or nil (and changes nothing) when the pair is illegal.
local function move(job, event, available_at, now)
  local target = MOVES[job.state][event]
  if not target then return nil end
  redis.call('ZREM', bk(job.n, 's:' .. job.state), job.jid)
  redis.call('ZADD', bk(job.n, 's:' .. target), job.seq, job.jid)
  if job.state == PENDING then leave_pending(job) end
  if job.owner then drop_lease(job) end
  if target == PENDING then enter_pending(job, available_at, now) end
  redis.call('HSET', jk(job.jid), 'state', target)
  count_type(job.type, job.state, -1)
  count_type(job.type, target, 1)
  return target
end

local function counts(n)
  local out = {{}}
  for _, state in ipairs(STATES) do
    out[#out + 1] = redis.call('ZCARD', bk(n, 's:' .. state))
  end
  return out
end
"""
