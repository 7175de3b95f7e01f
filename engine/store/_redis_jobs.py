"""The Redis store's methods on one job by id: look-up, cancel, retry, and
the progress its handler reported.

``RedisJobs`` is inherited by ``RedisStore``; each method is one script of
``JOB_SCRIPTS`` (on ``engine.store._redis_layout``'s prelude), one round
trip, shielded from cancellation through the store's ``_run``. State
changes go through the prelude's ``move``, so only the lifecycle table's
moves happen: a job that moved on meanwhile is left alone, and the caller
learns the state it found.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import JobNotFound
from engine.store._redis_layout import PRELUDE
from engine.store._redis_values import STATES, job_record, number
from engine.store.records import JobRecord
from protocols.lifecycle import JobState

__all__ = ["JOB_SCRIPTS", "RedisJobs"]

# ARGV: job id → its fields, or false.
_GET_JOB = """
if redis.call('EXISTS', jk(ARGV[1])) == 0 then return false end
return job_fields(ARGV[1])
"""

# ARGV: job id, now, error → the state it was in, or false. Pending → failed;
# an active job is asked of its lease owner (set cancels:<owner>).
_CANCEL_JOB = """
local job = load(ARGV[1])
if not job then return false end
local found = job.state
if move(job, 'cancel', nil, ARGV[2]) then
  redis.call('HSET', jk(job.jid), 'error', ARGV[3], 'finished_at', ARGV[2])
  redis.call('HDEL', jk(job.jid), 'traceback')
elseif found == ACTIVE and job.owner then
  redis.call('SADD', P .. 'cancels:' .. job.owner, job.jid)
end
return found
"""

# ARGV: job id, now → 1 when it was failed (pending now), 0 if not, or false.
_RETRY_JOB = """
local job = load(ARGV[1])
if not job then return false end
if not move(job, 'requeue', ARGV[2], ARGV[2]) then return 0 end
redis.call('HSET', jk(job.jid), 'attempts', 0, 'available_at', ARGV[2])
redis.call('HDEL', jk(job.jid), 'error', 'traceback', 'result', 'finished_at',
  'started_at', 'progress')
return 1
"""

# ARGV: owner, then job id, percent pairs: only jobs under the owner's lease.
_RECORD_PROGRESS = """
for i = 2, #ARGV, 2 do
  local job = load(ARGV[i])
  if job and job.state == ACTIVE and job.owner == ARGV[1] then
    redis.call('HSET', jk(job.jid), 'progress', ARGV[i + 1])
  end
end
return 1
"""

# ARGV: owner → the ids asked since the last call of jobs still active
# under the owner's lease; the asks are taken.
_TAKE_CANCEL_REQUESTS = """
local key = P .. 'cancels:' .. ARGV[1]
local out = {}
for _, jid in ipairs(redis.call('SMEMBERS', key)) do
  local job = load(jid)
  if job and job.state == ACTIVE and job.owner == ARGV[1] then out[#out + 1] = jid end
end
redis.call('DEL', key)
return out
"""

JOB_SCRIPTS = {
    name: PRELUDE + body
    for name, body in {
        "get_job": _GET_JOB,
        "cancel_job": _CANCEL_JOB,
        "retry_job": _RETRY_JOB,
        "record_progress": _RECORD_PROGRESS,
        "take_cancel_requests": _TAKE_CANCEL_REQUESTS,
    }.items()
}


class RedisJobs:
    """One job by id on Redis, for ``RedisStore``; each method is one
    script, shielded from cancellation, and raises ``StoreUnavailable``
    when Redis cannot be reached."""

    if TYPE_CHECKING:
        _clock: Callable[[], float]

        async def _run(self, script: str, *args: str | int) -> Any: ...

    async def get_job(self, job_id: str) -> JobRecord:
        """The job as stored.

        Cancellation: shielded; it only reads.

        Raises:
            JobNotFound: no such job.
        """
        fields = await self._run("get_job", job_id)
        if fields is None:
            raise JobNotFound(f"no job {job_id!r}")
        return job_record(fields)

    async def cancel_job(self, job_id: str, error: str = "cancelled") -> JobState:
        """A pending job becomes failed with ``error``; an active one is
        marked for its engine (``take_cancel_requests``); any other is left
        as it is.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            The state the job was in (``pending``: it is failed now).

        Raises:
            JobNotFound: no such job.
        """
        found = await self._run("cancel_job", job_id, number(self._clock()), error)
        if found is None:
            raise JobNotFound(f"no job {job_id!r}")
        return STATES[found]

    async def retry_job(self, job_id: str) -> bool:
        """A failed job back to pending, due now, attempts and error reset.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            Whether it was failed (and is pending now).

        Raises:
            JobNotFound: no such job.
        """
        moved = await self._run("retry_job", job_id, number(self._clock()))
        if moved is None:
            raise JobNotFound(f"no job {job_id!r}")
        return bool(moved)

    async def take_cancel_requests(self, owner: str) -> list[str]:
        """The active jobs under ``owner``'s lease whose cancel was asked
        (``cancel_job``) since the last call; each is handed out once.

        Cancellation: shielded: it returns or raises, never half-done.
        """
        return list(await self._run("take_cancel_requests", owner))

    async def record_progress(self, progress: Mapping[str, float], *, owner: str) -> None:
        """Note the percentage each job's handler last reported, for the
        jobs active under ``owner``'s lease (the others are skipped).

        Cancellation: shielded: it returns or raises, never half-done.
        """
        if not progress:
            return
        args: list[str | int] = [owner]
        for job_id, percent in progress.items():
            args += [job_id, number(percent)]
        await self._run("record_progress", *args)
