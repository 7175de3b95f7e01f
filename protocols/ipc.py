"""Messages between the engine (parent) and a batch's child process.

Design notes
------------
The parent dispatches and the child executes: only the parent talks to the
store, so every message the child needs carries everything about a job
(``JobToRun``), and every fact the child reports names the job it concerns.

A child may be started before it knows its batch (a *warm* child). It says
``Ready`` once its imports are done, then waits for ``Begin``; only then does it
say ``BatchStarted`` and accept ``RunJobs``. ``Begin`` carries the batch's
rate limit, which the child keeps where handlers start (each job's ``cost``
counts), with the run's recent starts, so a child that replaces another
cannot start more than the window allows. A job's life is told in facts:
``JobStarted`` (its handler is about to run), any number of ``JobProgress``
(the handler reported a percentage), then one of ``JobCompleted`` (with the
handler's result, and the jobs it enqueued as ``FollowUp`` values, which the
engine records with the completion), ``JobFailed`` (with why),
``JobRateLimited`` (the handler's API said "too many requests": the job goes
back without using an attempt, and the batch starts nothing for a while) or
``JobInterrupted``.

``Shutdown`` means "take nothing new, finish what you hold, say ``Done``,
exit 0"; the parent sends it both when the batch has no more work and when
the engine stops. ``Cancel`` means "cancel what you hold, report each job as
``JobInterrupted``, say ``Done``, exit 0". ``CancelJob`` cancels one job
only. A job sent with ``timeout_seconds`` is cancelled by the child once its
handler has run that long and reported ``JobFailed``.

``Ping`` asks for a ``Pong`` at once, from the child's event loop: the
parent sends it when the child has been quiet for a while, and a child
that answers nothing in time is taken for crashed (its loop is blocked).

Every class is a frozen attrs value. The wire tag of each message (the
``"type"`` key) is given by ``PARENT_MESSAGE_TAGS`` / ``CHILD_MESSAGE_TAGS``;
which event each fact becomes is said by ``protocols.events``. The engine
writes its ``RunJobs`` lines without building ``JobToRun`` values
(``protocols.run_jobs``, held to the same bytes); the child decodes them as
any message.

The child writes what one scheduling round produced as one line: a single
message as itself, several as one ``Reports`` (tag ``"reports"``) holding
them in order, so the engine decodes one line per round, not one per fact.
A line is a ``ChildLine``; ``facts_of`` gives the messages it carries.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from protocols.fields import OMIT_WHEN_DEFAULT

__all__ = [
    "CHILD_LINE_TAGS",
    "CHILD_MESSAGE_TAGS",
    "PARENT_MESSAGE_TAGS",
    "BatchStarted",
    "Begin",
    "Cancel",
    "CancelJob",
    "ChildFailed",
    "ChildLine",
    "ChildMessage",
    "Done",
    "FollowUp",
    "JobCompleted",
    "JobFailed",
    "JobInterrupted",
    "JobProgress",
    "JobRateLimited",
    "JobStarted",
    "JobToRun",
    "ParentMessage",
    "Ping",
    "Pong",
    "Progress",
    "Ready",
    "RecentStart",
    "Reports",
    "RunJobs",
    "Shutdown",
    "StartRate",
    "facts_of",
]


def _percent(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{attribute.name} must be within 0..100, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


def _positive_finite(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 < value < math.inf:
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


# --- parent → child ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class JobToRun:
    """One job handed to the child: everything its handler needs."""

    job_id: str
    type: str
    payload: Any
    attempt: int = attrs.field(validator=_positive)
    #: Seconds the handler may run; past them the child cancels it and
    #: reports the job failed ``timed out after Ns``. None: no limit.
    timeout_seconds: float | None = None
    #: What the job's start counts against the batch's rate limit.
    cost: float = attrs.field(
        default=1.0, validator=_positive_finite, metadata={OMIT_WHEN_DEFAULT: True}
    )


@attrs.frozen(kw_only=True)
class RecentStart:
    """A start of the batch's run, made by an earlier child: when (the
    wall clock of its ``JobStarted``) and its cost."""

    started_at: float
    cost: float = attrs.field(validator=_positive_finite)


@attrs.frozen(kw_only=True)
class StartRate:
    """The batch's rate limit, which the child keeps where handlers start:
    at most ``count`` of cost started in any ``per_seconds`` seconds.
    ``recent`` are the run's starts (by earlier children) still inside the
    window when the engine sent it, which count as the child's own."""

    count: int = attrs.field(validator=_positive)
    per_seconds: float = attrs.field(validator=_positive_finite)
    recent: tuple[RecentStart, ...] = ()


@attrs.frozen(kw_only=True)
class Begin:
    """Bind a (possibly warm) child to its batch; ``rate`` is the batch's
    rate limit (None: none)."""

    batch_id: str
    concurrency: int = attrs.field(validator=_positive)
    rate: StartRate | None = attrs.field(default=None, metadata={OMIT_WHEN_DEFAULT: True})


@attrs.frozen(kw_only=True)
class RunJobs:
    """Run these jobs; the parent never sends more than the concurrency allows."""

    jobs: tuple[JobToRun, ...]


@attrs.frozen(kw_only=True)
class Shutdown:
    """Take nothing new, finish what is in flight, report ``Done``, exit 0."""


@attrs.frozen(kw_only=True)
class Cancel:
    """Cancel what is in flight, report each job as interrupted, exit 0."""


@attrs.frozen(kw_only=True)
class CancelJob:
    """Cancel this one job if the child holds it (reported ``JobInterrupted``);
    the child's other jobs go on. A job the child does not hold is ignored."""

    job_id: str


@attrs.frozen(kw_only=True)
class Ping:
    """Answer ``Pong`` now: the parent heard nothing from the child for a
    while and checks that its event loop still runs (the answer comes from
    that loop, never from a handler's thread)."""


ParentMessage = Begin | RunJobs | Shutdown | Cancel | CancelJob | Ping

PARENT_MESSAGE_TAGS: dict[type[Any], str] = {
    Begin: "begin",
    RunJobs: "run-jobs",
    Shutdown: "shutdown",
    Cancel: "cancel",
    CancelJob: "cancel-job",
    Ping: "ping",
}


# --- child → parent ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class Ready:
    """The child has imported everything and waits for ``Begin``."""

    pid: int


@attrs.frozen(kw_only=True)
class BatchStarted:
    """The child accepted ``Begin`` and takes jobs for this batch."""

    batch_id: str


@attrs.frozen(kw_only=True)
class JobStarted:
    """The job's handler is about to run: the job is active from here on.

    Sent before the handler runs, so that a handler which takes the process
    down with it is known to have started (its attempt counts).
    ``started_at`` is the child's wall clock (epoch seconds) at that moment:
    the start as a rate-limited API would see it.
    """

    job_id: str
    started_at: float


@attrs.frozen(kw_only=True)
class JobProgress:
    """The running job's handler reported how far it got, in percent."""

    job_id: str
    progress: float = attrs.field(validator=_percent)


@attrs.frozen(kw_only=True)
class FollowUp:
    """A job the handler enqueued (``ctx.enqueue``): to ``batch_id``, or to
    the job's own batch when None. The fields are those of a job in the
    HTTP API."""

    batch_id: str | None = None
    type: str
    payload: Any = None
    key: str | None = None
    priority: int = 0
    delay_seconds: float = 0.0
    cost: float = 1.0
    timeout_seconds: float | None = None


@attrs.frozen(kw_only=True)
class JobCompleted:
    """The job's handler returned ``result``, having enqueued ``follow_ups``
    (left off the wire when there are none)."""

    job_id: str
    result: Any = None
    follow_ups: tuple[FollowUp, ...] = attrs.field(default=(), metadata={OMIT_WHEN_DEFAULT: True})


@attrs.frozen(kw_only=True)
class JobFailed:
    """The job's handler raised: ``error`` says what, for people, and
    ``traceback`` where."""

    job_id: str
    error: str
    traceback: str | None = None


def _seconds(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value < math.inf:
        raise ValueError(f"{attribute.name} must be finite seconds >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class JobRateLimited:
    """The job's handler raised ``RateLimited``: the job did not finish and
    goes back to pending without using an attempt; the child starts none of
    its other jobs for ``retry_after`` seconds."""

    job_id: str
    retry_after: float = attrs.field(validator=_seconds)


@attrs.frozen(kw_only=True)
class JobInterrupted:
    """A job was cut short by ``Cancel``; it did not finish."""

    job_id: str


@attrs.frozen(kw_only=True)
class Progress:
    """The child's own tally: jobs it holds, and jobs it finished."""

    in_flight: int
    completed: int
    failed: int


@attrs.frozen(kw_only=True)
class Done:
    """The child finished what it held and is about to exit 0."""

    completed: int
    failed: int


@attrs.frozen(kw_only=True)
class ChildFailed:
    """The child cannot go on (for example a job module failed to import)."""

    error: str


@attrs.frozen(kw_only=True)
class Pong:
    """The answer to ``Ping``: the child's event loop runs."""


ChildMessage = (
    Ready
    | BatchStarted
    | JobStarted
    | JobProgress
    | JobCompleted
    | JobFailed
    | JobRateLimited
    | JobInterrupted
    | Progress
    | Done
    | ChildFailed
    | Pong
)

CHILD_MESSAGE_TAGS: dict[type[Any], str] = {
    Ready: "ready",
    BatchStarted: "started",
    JobStarted: "job-started",
    JobProgress: "job-progress",
    JobCompleted: "job-completed",
    JobFailed: "job-failed",
    JobRateLimited: "job-rate-limited",
    JobInterrupted: "job-interrupted",
    Progress: "progress",
    Done: "done",
    ChildFailed: "error",
    Pong: "pong",
}


@attrs.frozen(kw_only=True)
class Reports:
    """Several child messages written together (one scheduling round's),
    in the order the child queued them."""

    facts: tuple[ChildMessage, ...]


#: What one line from the child holds.
ChildLine = ChildMessage | Reports

CHILD_LINE_TAGS: dict[type[Any], str] = {**CHILD_MESSAGE_TAGS, Reports: "reports"}


def facts_of(line: ChildLine) -> tuple[ChildMessage, ...]:
    """The messages one line carries, in order."""
    if isinstance(line, Reports):
        return line.facts
    return (line,)
