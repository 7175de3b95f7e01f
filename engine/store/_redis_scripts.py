"""The Lua scripts of the Redis store's batches and jobs, one per method.

Each runs on ``PRELUDE`` (``engine.store._redis_layout``, which documents
the keys and why every change is one script).
"""

from __future__ import annotations

from engine.store._redis_layout import PRELUDE

__all__ = ["SCRIPTS"]

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

# ARGV: batch id, now → 1, 0 for no such batch, or the owner of the
# batch's live run record (then nothing is deleted).
_DELETE_BATCH = """
local n = batch_num(ARGV[1])
if not n then return 0 end
local running = live_owner(ARGV[1], ARGV[2])
if running then return running end
for _, jid in ipairs(redis.call('ZRANGE', bk(n, 's:' .. ACTIVE), 0, -1)) do
  drop_lease(load(jid))
end
redis.call('DECRBY', P .. 'pending', redis.call('ZCARD', bk(n, 's:' .. PENDING)))
for _, jid in ipairs(redis.call('ZRANGE', bk(n, 'all'), 0, -1)) do
  local f = redis.call('HMGET', jk(jid), 'type', 'state')
  count_type(f[1], f[2], -1)
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

# Adds one job to the batch numbered n (id ``batch``) unless its key is
# taken there: a[i] .. a[i + 9] are its id, type, payload, key (optional),
# rank, available_at, max_attempts, priority, cost, timeout (optional).
# Whether it was added.
_INSERT_JOB = """
local function insert_job(n, batch, now, a, i)
  local jid, key = a[i], a[i + 3]
  local fresh = key == 'n' or redis.call('HSETNX', bk(n, 'keys'), string.sub(key, 2), jid) == 1
  if not fresh then return false end
  local seq = redis.call('INCR', P .. 'seq')
  local ord = a[i + 4] .. string.format('%016x', seq) .. jid
  redis.call('HSET', jk(jid), 'n', n, 'seq', seq, 'ord', ord, 'job_id', jid, 'batch', batch,
    'type', a[i + 1], 'state', PENDING, 'payload', a[i + 2], 'attempts', 0,
    'max_attempts', a[i + 6], 'priority', a[i + 7], 'created_at', now,
    'available_at', a[i + 5], 'cost', a[i + 8])
  set_opt(jid, 'key', key)
  set_opt(jid, 'timeout_seconds', a[i + 9])
  redis.call('ZADD', bk(n, 'all'), seq, jid)
  redis.call('ZADD', bk(n, 's:' .. PENDING), seq, jid)
  count_type(a[i + 1], PENDING, 1)
  enter_pending({jid = jid, n = n, ord = ord, batch = batch}, a[i + 5], now)
  return true
end
"""

# ARGV: batch id, now, then per job the ten fields of ``insert_job``. The
# ids added, or false.
_ADD_JOBS = (
    _INSERT_JOB
    + """
local n = batch_num(ARGV[1])
if not n then return false end
local added = {}
for i = 3, #ARGV, 10 do
  if insert_job(n, ARGV[1], ARGV[2], ARGV, i) then added[#added + 1] = ARGV[i] end
end
return added
"""
)

# ARGV: batch id, limit, owner, now, lease expiry, claim token. The claimed
# jobs' fields. The batch's field claim:<owner> keeps "<token> <job id>..." of
# the owner's latest claim: a claim under that token again (the caller never
# had its reply) first hands out anew those of its jobs that are still the
# owner's, lease renewed and no attempt counted; beyond the limit they go
# back to pending, their attempt refunded. Then it claims due jobs as usual.
_CLAIM_JOBS = """
local n = batch_num(ARGV[1])
if not n then return {} end
local limit, owner, now, expires, token = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local batch, mark = P .. 'batch:' .. ARGV[1], 'claim:' .. owner
local out, ids = {}, {}
local function hand_out(jid)
  redis.call('HSET', jk(jid), 'lease_owner', owner, 'lease_expires', expires)
  redis.call('ZADD', P .. 'leases', expires, jid)
  redis.call('SADD', P .. 'owner:' .. owner, jid)
  ids[#ids + 1] = jid
  out[#out + 1] = job_fields(jid)
end
local seen = redis.call('HGET', batch, mark)
if seen and string.sub(seen, 1, #token + 1) == token .. ' ' then
  for jid in string.gmatch(string.sub(seen, #token + 2), '%S+') do
    local job = load(jid)
    if job and job.state == ACTIVE and job.owner == owner then
      if #out < limit then
        hand_out(jid)
      elseif move(job, 'release', redis.call('HGET', jk(jid), 'available_at'), now) then
        redis.call('HSET', jk(jid), 'attempts', math.max(job.attempts - 1, 0))
      end
    end
  end
end
if #out < limit then
  for _, jid in ipairs(redis.call('ZRANGEBYSCORE', bk(n, 'delayed'), '-inf', now)) do
    redis.call('ZREM', bk(n, 'delayed'), jid)
    redis.call('ZADD', bk(n, 'ready'), 0, redis.call('HGET', jk(jid), 'ord'))
  end
  for _, ord in ipairs(redis.call('ZRANGE', bk(n, 'ready'), 0, limit - #out - 1)) do
    local job = load(string.sub(ord, ORD_HEAD + 1))
    if move(job, 'claim', nil, now) then
      redis.call('HINCRBY', jk(job.jid), 'attempts', 1)
      redis.call('HSET', jk(job.jid), 'started_at', now)
      redis.call('HDEL', jk(job.jid), 'progress')
      redis.call('SREM', P .. 'cancels:' .. owner, job.jid)
      hand_out(job.jid)
    end
  end
end
if #ids > 0 then
  redis.call('HSET', batch, mark, token .. ' ' .. table.concat(ids, ' '))
else
  redis.call('HDEL', batch, mark)
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

# ARGV: now, owner, how many outcome arguments follow, then per outcome:
# job id, kind, and three arguments:
#   complete: result;  fail: error, traceback (optional);
#   retry: error, traceback (optional), retry_at;
#   release: refund (1/0), error (optional), due again at ('' = as before).
# Then per follow-up job: the id of the job that enqueued it, its batch id,
# and the ten fields of ``insert_job``; added only when that job completed
# here, to a batch that still exists.
# Only jobs under the owner's lease move (only active jobs have one).
# Returns job id, new state, ... for the jobs moved.
_APPLY = (
    _INSERT_JOB
    + """
local now, owner, out, completed = ARGV[1], ARGV[2], {}, {}
local follow_ups = 4 + tonumber(ARGV[3])
for i = 4, follow_ups - 1, 5 do
  local job, kind, a, b, c = load(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if job and job.owner == owner then
    local event, target = kind, nil
    if kind == 'retry' then event = 'retry-later'
    elseif kind == 'release' and a == '0' and job.attempts >= job.max_attempts then
      event, kind, a, b = 'fail', 'fail', string.sub(b, 2), 'n'
    end
    local due = kind == 'retry' or (kind == 'release' and c ~= '')
    local available_at = due and c or redis.call('HGET', jk(job.jid), 'available_at')
    target = move(job, event, available_at, now)
    if target then
      local key = jk(job.jid)
      if target ~= PENDING then redis.call('HSET', key, 'finished_at', now) end
      if kind == 'complete' then
        redis.call('HSET', key, 'result', a)
        redis.call('HDEL', key, 'error', 'traceback')
      elseif kind == 'fail' or kind == 'retry' then
        redis.call('HSET', key, 'error', a)
        set_opt(job.jid, 'traceback', b)
        if kind == 'retry' then redis.call('HSET', key, 'available_at', c) end
      else
        if a == '1' then
          redis.call('HSET', key, 'attempts', math.max(job.attempts - 1, 0))
        else
          set_opt(job.jid, 'error', b)
        end
        if due then redis.call('HSET', key, 'available_at', c) end
      end
      out[#out + 1] = job.jid
      out[#out + 1] = target
      if kind == 'complete' then completed[job.jid] = true end
    end
  end
end
for i = follow_ups, #ARGV, 12 do
  local n = completed[ARGV[i]] and batch_num(ARGV[i + 1])
  if n then insert_job(n, ARGV[i + 1], now, ARGV, i + 2) end
end
return out
"""
)

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
    redis.call('HDEL', jk(jid), 'error', 'traceback', 'result', 'finished_at',
      'started_at', 'progress')
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

# → per state (``STATES`` order) the flat list type, count, ... The first
# call on a store recounts every job into the ``types:`` hashes (jobs
# stored before they were kept); from then on the scripts keep them.
_COUNTS_BY_TYPE = """
if redis.call('EXISTS', P .. 'types:counted') == 0 then
  for _, state in ipairs(STATES) do redis.call('DEL', P .. 'types:' .. state) end
  for _, id in ipairs(redis.call('ZRANGE', P .. 'batches', 0, -1)) do
    for _, jid in ipairs(redis.call('ZRANGE', bk(batch_num(id), 'all'), 0, -1)) do
      local f = redis.call('HMGET', jk(jid), 'type', 'state')
      count_type(f[1], f[2], 1)
    end
  end
  redis.call('SET', P .. 'types:counted', 1)
end
local out = {}
for _, state in ipairs(STATES) do
  out[#out + 1] = redis.call('HGETALL', P .. 'types:' .. state)
end
return out
"""

_QUEUE_LENGTH = """
return tonumber(redis.call('GET', P .. 'pending') or '0')
"""

# ARGV: how many of the arguments that follow are apply's (A), then apply's
# ARGV (A of them), then claim_jobs's. Both bodies run as they are, each on
# its own slice of the arguments, in one script: the outcomes of a burst are
# recorded and the next jobs claimed in one step. Returns {apply's reply,
# claim_jobs's reply}.
_APPLY_AND_CLAIM = f"""
local function apply_part(ARGV)
{_APPLY}
end
local function claim_part(ARGV)
{_CLAIM_JOBS}
end
local split = tonumber(ARGV[1])
local applied, claiming = {{}}, {{}}
for i = 2, split + 1 do applied[#applied + 1] = ARGV[i] end
for i = split + 2, #ARGV do claiming[#claiming + 1] = ARGV[i] end
local states = {{}}
if split > 0 then states = apply_part(applied) end
return {{states, claim_part(claiming)}}
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
        "apply_and_claim": _APPLY_AND_CLAIM,
        "counts": _COUNTS,
        "list_jobs": _LIST_JOBS,
        "retry_failed": _RETRY_FAILED,
        "renew_leases": _RENEW_LEASES,
        "recover_expired_leases": _RECOVER_EXPIRED_LEASES,
        "queue_length": _QUEUE_LENGTH,
        "counts_by_type": _COUNTS_BY_TYPE,
    }.items()
}
