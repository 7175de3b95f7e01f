"""The Redis store's key layout and the Lua scripts that change it.

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
    batch:<id>            hash: num, type, created_at, options
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

``ready`` orders by member because a score (a double) cannot hold a 64-bit
priority exactly: ``rank`` is ``2**63 - 1 - priority`` in 16 hex digits,
computed in Python, so the highest priority sorts first and then the
lowest seq. A delayed job moves to ``ready`` in the first claim after it is
due. Counts are the cardinalities of the per-state sets, and queue length a
counter, so neither walks jobs.

Every state change goes through the Lua function ``move``, which looks the
pair (state, event) up in ``MOVES``: a Lua rendering of
``protocols.lifecycle.TRANSITIONS``. A script never moves a job along a pair
the table lacks, as the SQLite statements never do.

Time: scripts take the caller's wall-clock ``now`` as an argument (the
store's ``clock``), like the SQLite store, and floats travel as ``repr``
strings, which Redis, Lua and Python all read back exactly.

The scripts of the cluster (engine registry, run ownership, startable
batches) are in ``engine.store._redis_cluster``, on the same prelude.

Scripts compute the keys of jobs from their ids, so the store needs a single
Redis server (or a primary), not Redis Cluster.
"""

from __future__ import annotations

from protocols.lifecycle import TRANSITIONS, JobState

__all__ = ["JOB_FIELDS", "PREFIX", "PRELUDE", "RANK_DIGITS", "SCRIPTS"]

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
    'max_attempts', 'lease_owner', 'batch')
  if not f[1] then return nil end
  return {{jid = jid, state = f[1], n = f[2], seq = f[3], ord = f[4],
    attempts = tonumber(f[5]), max_attempts = tonumber(f[6]), owner = f[7], batch = f[8]}}
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

# ARGV: batch id, type, now, options (JSON), starts by itself (1/0). 0 when
# the id is taken.
_CREATE_BATCH = """
local key = P .. 'batch:' .. ARGV[1]
if redis.call('EXISTS', key) == 1 then return 0 end
local n = redis.call('INCR', P .. 'seq')
redis.call('HSET', key, 'num', n, 'type', ARGV[2], 'created_at', ARGV[3], 'options', ARGV[4])
redis.call('ZADD', P .. 'batches', n, ARGV[1])
if ARGV[5] == '1' then redis.call('ZADD', P .. 'starts-itself', n, ARGV[1]) end
return 1
"""

# ARGV: batch id, now → {type, created_at, options, counts, live run owner},
# or false.
_GET_BATCH = """
local n = batch_num(ARGV[1])
if not n then return false end
local f = redis.call('HMGET', P .. 'batch:' .. ARGV[1], 'type', 'created_at', 'options')
return {f[1], f[2], f[3], counts(n), live_owner(ARGV[1], ARGV[2])}
"""

# ARGV: now → per batch, its id then what _GET_BATCH returns.
_LIST_BATCHES = """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'batches', 0, -1)) do
  local f = redis.call('HMGET', P .. 'batch:' .. id, 'num', 'type', 'created_at', 'options')
  out[#out + 1] = {id, f[2], f[3], f[4], counts(f[1]), live_owner(id, ARGV[1])}
end
return out
"""

# ARGV: batch id → 1, or 0 for no such batch.
_DELETE_BATCH = """
local n = batch_num(ARGV[1])
if not n then return 0 end
for _, jid in ipairs(redis.call('ZRANGE', bk(n, 's:' .. ACTIVE), 0, -1)) do
  drop_lease(load(jid))
end
redis.call('DECRBY', P .. 'pending', redis.call('ZCARD', bk(n, 's:' .. PENDING)))
for _, jid in ipairs(redis.call('ZRANGE', bk(n, 'all'), 0, -1)) do
  redis.call('DEL', jk(jid))
end
for _, state in ipairs(STATES) do redis.call('DEL', bk(n, 's:' .. state)) end
for _, part in ipairs({'all', 'ready', 'delayed', 'due', 'keys'}) do
  redis.call('DEL', bk(n, part))
end
redis.call('DEL', P .. 'batch:' .. ARGV[1])
redis.call('ZREM', P .. 'batches', ARGV[1])
redis.call('ZREM', P .. 'queued', ARGV[1])
redis.call('ZREM', P .. 'starts-itself', ARGV[1])
local runner = redis.call('HGET', P .. 'runs', ARGV[1])
if runner then redis.call('SREM', P .. 'runs-of:' .. runner, ARGV[1]) end
redis.call('HDEL', P .. 'runs', ARGV[1])
redis.call('ZREM', P .. 'runs:expiry', ARGV[1])
return 1
"""

# ARGV: batch id, now, then per job: id, type, payload, key (optional),
# rank, available_at, max_attempts, priority, cost. The ids added, or false.
_ADD_JOBS = """
local n = batch_num(ARGV[1])
if not n then return false end
local now, added = ARGV[2], {}
for i = 3, #ARGV, 9 do
  local jid, key = ARGV[i], ARGV[i + 3]
  local fresh = key == 'n' or redis.call('HSETNX', bk(n, 'keys'), string.sub(key, 2), jid) == 1
  if fresh then
    local seq = redis.call('INCR', P .. 'seq')
    local ord = ARGV[i + 4] .. string.format('%016x', seq) .. jid
    redis.call('HSET', jk(jid), 'n', n, 'seq', seq, 'ord', ord, 'job_id', jid, 'batch', ARGV[1],
      'type', ARGV[i + 1], 'state', PENDING, 'payload', ARGV[i + 2], 'attempts', 0,
      'max_attempts', ARGV[i + 6], 'priority', ARGV[i + 7], 'created_at', now,
      'available_at', ARGV[i + 5], 'cost', ARGV[i + 8])
    set_opt(jid, 'key', key)
    redis.call('ZADD', bk(n, 'all'), seq, jid)
    redis.call('ZADD', bk(n, 's:' .. PENDING), seq, jid)
    enter_pending({jid = jid, n = n, ord = ord, batch = ARGV[1]}, ARGV[i + 5], now)
    added[#added + 1] = jid
  end
end
return added
"""

# ARGV: batch id, limit, owner, now, lease expiry. The claimed jobs' fields.
_CLAIM_JOBS = """
local n = batch_num(ARGV[1])
if not n then return {} end
local owner, now, expires = ARGV[3], ARGV[4], ARGV[5]
for _, jid in ipairs(redis.call('ZRANGEBYSCORE', bk(n, 'delayed'), '-inf', now)) do
  redis.call('ZREM', bk(n, 'delayed'), jid)
  redis.call('ZADD', bk(n, 'ready'), 0, redis.call('HGET', jk(jid), 'ord'))
end
local out = {}
for _, ord in ipairs(redis.call('ZRANGE', bk(n, 'ready'), 0, tonumber(ARGV[2]) - 1)) do
  local job = load(string.sub(ord, ORD_HEAD + 1))
  if move(job, 'claim', nil, now) then
    redis.call('HINCRBY', jk(job.jid), 'attempts', 1)
    redis.call('HSET', jk(job.jid), 'lease_owner', owner, 'lease_expires', expires)
    redis.call('ZADD', P .. 'leases', expires, job.jid)
    redis.call('SADD', P .. 'owner:' .. owner, job.jid)
    out[#out + 1] = job_fields(job.jid)
  end
end
return out
"""

# ARGV: batch id → available_at of its earliest pending job, or false.
_NEXT_DUE_AT = """
local n = batch_num(ARGV[1])
if not n then return false end
local first = redis.call('ZRANGE', bk(n, 'due'), 0, 0)[1]
return first and redis.call('HGET', jk(first), 'available_at') or false
"""

# ARGV: now, then per outcome: job id, kind, and three arguments:
#   complete: result;  fail: error, traceback (optional);
#   retry: error, traceback (optional), retry_at;  release: refund (1/0), error.
# Returns job id, new state, ... for the jobs moved.
_APPLY = """
local now, out = ARGV[1], {}
for i = 2, #ARGV, 5 do
  local job, kind, a, b, c = load(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if job then
    local event, target = kind, nil
    if kind == 'retry' then event = 'retry-later'
    elseif kind == 'release' and a == '0' and job.attempts >= job.max_attempts then
      event, kind, a, b = 'fail', 'fail', string.sub(b, 2), 'n'
    end
    local available_at = kind == 'retry' and c or redis.call('HGET', jk(job.jid), 'available_at')
    target = move(job, event, available_at, now)
    if target then
      local key = jk(job.jid)
      if kind == 'complete' then
        redis.call('HSET', key, 'result', a)
        redis.call('HDEL', key, 'error', 'traceback')
      elseif kind == 'fail' or kind == 'retry' then
        redis.call('HSET', key, 'error', a)
        set_opt(job.jid, 'traceback', b)
        if kind == 'retry' then redis.call('HSET', key, 'available_at', c) end
      elseif a == '1' then
        redis.call('HSET', key, 'attempts', math.max(job.attempts - 1, 0))
      else
        set_opt(job.jid, 'error', b)
      end
      out[#out + 1] = job.jid
      out[#out + 1] = target
    end
  end
end
return out
"""

_COUNTS = """
local n = batch_num(ARGV[1])
if not n then return false end
return counts(n)
"""

# ARGV: batch id, set ('all' or 's:<state>'), after seq, how many.
_LIST_JOBS = """
local n = batch_num(ARGV[1])
if not n then return false end
local out = {}
local ids = redis.call('ZRANGEBYSCORE', bk(n, ARGV[2]), '(' .. ARGV[3], '+inf',
  'LIMIT', 0, tonumber(ARGV[4]))
for _, jid in ipairs(ids) do out[#out + 1] = job_fields(jid) end
return out
"""

# ARGV: batch id, now → how many requeued, or false.
_RETRY_FAILED = """
local n = batch_num(ARGV[1])
if not n then return false end
local moved = 0
for _, jid in ipairs(redis.call('ZRANGE', bk(n, 's:' .. FAILED), 0, -1)) do
  if move(load(jid), 'requeue', ARGV[2], ARGV[2]) then
    redis.call('HSET', jk(jid), 'attempts', 0, 'available_at', ARGV[2])
    redis.call('HDEL', jk(jid), 'error', 'traceback', 'result')
    moved = moved + 1
  end
end
return moved
"""

# ARGV: owner, new expiry → how many job leases renewed (run records too).
_RENEW_LEASES = """
for _, id in ipairs(redis.call('SMEMBERS', P .. 'runs-of:' .. ARGV[1])) do
  if redis.call('HGET', P .. 'runs', id) == ARGV[1] then
    redis.call('ZADD', P .. 'runs:expiry', ARGV[2], id)
  else
    redis.call('SREM', P .. 'runs-of:' .. ARGV[1], id)
  end
end
local renewed = 0
for _, jid in ipairs(redis.call('SMEMBERS', P .. 'owner:' .. ARGV[1])) do
  local job = load(jid)
  if job and job.owner == ARGV[1] and MOVES[job.state]['expire'] then
    redis.call('HSET', jk(jid), 'lease_expires', ARGV[2])
    redis.call('ZADD', P .. 'leases', ARGV[2], jid)
    renewed = renewed + 1
  else
    redis.call('SREM', P .. 'owner:' .. ARGV[1], jid)
  end
end
return renewed
"""

# ARGV: now → how many recovered.
_RECOVER_EXPIRED_LEASES = """
local recovered = 0
for _, jid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', ARGV[1])) do
  local job = load(jid)
  local available_at = job and redis.call('HGET', jk(jid), 'available_at')
  if job and move(job, 'expire', available_at, ARGV[1]) then
    redis.call('HSET', jk(jid), 'attempts', math.max(job.attempts - 1, 0))
    recovered = recovered + 1
  else
    redis.call('ZREM', P .. 'leases', jid)
  end
end
return recovered
"""

_QUEUE_LENGTH = """
return tonumber(redis.call('GET', P .. 'pending') or '0')
"""

#: Script name → full source (the prelude, then the body).
SCRIPTS = {
    name: PRELUDE + body
    for name, body in {
        "create_batch": _CREATE_BATCH,
        "get_batch": _GET_BATCH,
        "list_batches": _LIST_BATCHES,
        "delete_batch": _DELETE_BATCH,
        "add_jobs": _ADD_JOBS,
        "claim_jobs": _CLAIM_JOBS,
        "next_due_at": _NEXT_DUE_AT,
        "apply": _APPLY,
        "counts": _COUNTS,
        "list_jobs": _LIST_JOBS,
        "retry_failed": _RETRY_FAILED,
        "renew_leases": _RENEW_LEASES,
        "recover_expired_leases": _RECOVER_EXPIRED_LEASES,
        "queue_length": _QUEUE_LENGTH,
    }.items()
}
