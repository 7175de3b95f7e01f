"""Follow-up jobs on the engine's side: a completion's ``ctx.enqueue`` jobs
checked, turned into store follow-ups, and announced once added.

Design notes
------------
The child checked each job against what it knows (its type, its fields);
the engine checks what only it knows, as it does for jobs submitted over
HTTP (``EnginePolicy.new_jobs``): the cost fits the rate limits that apply,
and each job gets its type's attempts. A named batch must exist; the check
is cached per run, since batches are seldom deleted and a batch deleted
between the check and the store step simply takes nothing (the store drops
follow-ups for a batch that is gone). A job whose follow-ups do not pass
fails with an error naming the problem, and adds nothing.

The jobs are added in the store step that records the completion
(``Complete.follow_ups``); once that step says the job completed, ``added``
tells the engine, which wakes the target batch's run if it runs here (a
running batch picks up jobs added to itself) and the cluster (a flow's
batch may start by itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from engine.core.values import JobRequest
from engine.errors import BatchNotFound, JobError, StoreUnavailable
from engine.store.base import Store
from engine.store.records import Complete, FollowUp, NewJob, Outcome
from protocols import ipc
from protocols.lifecycle import JobState

__all__ = ["FollowUpRecorder", "FollowUpRules"]


@attrs.frozen(kw_only=True)
class FollowUpRules:
    """What the engine lends a run for follow-ups.

    ``new_jobs(default_type, requests)`` is the engine's policy for new jobs
    (raises ``JobError`` for one it refuses); ``added(batch_id, n)`` tells
    the engine ``n`` jobs were added to a batch.
    """

    new_jobs: Callable[[str, Sequence[JobRequest]], list[NewJob]]
    added: Callable[[str, int], None]


class FollowUpRecorder:
    """A run's follow-ups: checked into ``Complete`` outcomes, announced
    once recorded.

    Args:
        batch_id: the run's batch, where follow-ups go by default.
        store: where named batches are looked up (not owned).
        rules: the engine's policy and its news of added jobs; without
            them, a job that enqueues fails.
    """

    def __init__(self, *, batch_id: str, store: Store, rules: FollowUpRules | None) -> None:
        self._batch_id = batch_id
        self._store = store
        self._rules = rules
        self._known = {batch_id}

    def complete(self, message: ipc.JobCompleted) -> Complete | str:
        """The completion with its follow-ups, or why they are refused."""
        if not message.follow_ups:
            return Complete(job_id=message.job_id, result=message.result)
        if self._rules is None:
            return "ctx.enqueue: this engine adds no jobs from handlers"
        requests = [_request(job) for job in message.follow_ups]
        try:
            jobs = self._rules.new_jobs("", requests)
        except JobError as exc:
            return f"ctx.enqueue: {exc}"
        follow_ups = tuple(
            FollowUp(batch_id=follow_up.batch_id or self._batch_id, job=job)
            for follow_up, job in zip(message.follow_ups, jobs, strict=True)
        )
        return Complete(job_id=message.job_id, result=message.result, follow_ups=follow_ups)

    async def refused(self, outcomes: Iterable[Outcome]) -> dict[str, str]:
        """Why the follow-ups of each of ``outcomes`` that names a batch that
        does not exist are refused, by job id. While the store is away the
        check is left to the store step (which drops what a missing batch
        would take).

        Cancellation: atomic: nothing happened.
        """
        refused: dict[str, str] = {}
        for outcome in outcomes:
            if not isinstance(outcome, Complete):
                continue
            for follow_up in outcome.follow_ups:
                if follow_up.batch_id in self._known:
                    continue
                try:
                    await self._store.get_batch(follow_up.batch_id)
                except BatchNotFound:
                    refused[outcome.job_id] = f"ctx.enqueue: no batch {follow_up.batch_id!r}"
                    break
                except StoreUnavailable:
                    continue
                self._known.add(follow_up.batch_id)
        return refused

    def announce(self, outcomes: Sequence[Outcome], states: Mapping[str, JobState]) -> None:
        """Tell the engine about the follow-ups of the jobs that completed."""
        added: dict[str, int] = {}
        for outcome in outcomes:
            if isinstance(outcome, Complete) and states.get(outcome.job_id) is JobState.COMPLETED:
                for follow_up in outcome.follow_ups:
                    added[follow_up.batch_id] = added.get(follow_up.batch_id, 0) + 1
        if self._rules is not None:
            for batch_id, count in added.items():
                self._rules.added(batch_id, count)


def _request(job: ipc.FollowUp) -> JobRequest:
    return JobRequest(
        type=job.type,
        payload=job.payload,
        key=job.key,
        priority=job.priority,
        delay_seconds=job.delay_seconds,
        cost=job.cost,
        timeout_seconds=job.timeout_seconds,
    )
