"""Hypothesis strategies for every wire value of ``protocols``, and a framer pair.

Design notes
------------
Values are drawn only from what JSON carries exactly through orjson: integers
within 64 bits, finite floats, UTF-8 text (no lone surrogates), lists (never
tuples) and objects with string keys. Inside that space a round trip must be
the identity, so any difference is a bug, not a caveat.

``SETTINGS`` keeps every property test small enough that the whole suite runs
in seconds; the properties are simple, and a few hundred examples each find
what a few thousand would.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from protocols import api, control, events, ipc
from protocols.framing import NEED_DATA, LineFramer
from protocols.job_api import ChildView, JobStateView
from protocols.lifecycle import JobState

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
COUNTS = st.integers(min_value=0, max_value=2**31)
TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)

# Payloads and results hold integers of any size; most fit in 64 bits.
WIDE_INTS = INT64 | st.integers(min_value=-(2**200), max_value=2**200)
JSON_SCALARS = st.none() | st.booleans() | WIDE_INTS | FLOATS | TEXT
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON, max_size=5)

BATCH_IDS = st.from_regex(api.BATCH_ID_PATTERN, fullmatch=True)
NAMES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
AWARE_DATETIMES = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(9999, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)

# --- IPC ----------------------------------------------------------------------

JOBS_TO_RUN = st.builds(
    ipc.JobToRun,
    job_id=TEXT,
    type=TEXT,
    payload=JSON,
    attempt=st.integers(min_value=1, max_value=2**31),
    timeout_seconds=st.none() | st.floats(min_value=0, exclude_min=True, max_value=1e9),
    cost=st.floats(min_value=0, exclude_min=True, max_value=1e9),
)

START_RATES = st.builds(
    ipc.StartRate,
    count=st.integers(min_value=1, max_value=2**31),
    per_seconds=st.floats(min_value=0, exclude_min=True, max_value=1e9),
    recent=st.lists(
        st.builds(
            ipc.RecentStart,
            started_at=st.floats(0, 2e9),
            cost=st.floats(min_value=0, exclude_min=True, max_value=1e9),
        ),
        max_size=3,
    ).map(tuple),
)

PARENT_MESSAGES: st.SearchStrategy[ipc.ParentMessage] = st.one_of(
    st.builds(
        ipc.Begin,
        batch_id=TEXT,
        concurrency=st.integers(min_value=1, max_value=2**31),
        rate=st.none() | START_RATES,
    ),
    st.builds(ipc.RunJobs, jobs=st.lists(JOBS_TO_RUN, max_size=3).map(tuple)),
    st.builds(ipc.Shutdown),
    st.builds(ipc.Cancel),
    st.builds(ipc.CancelJob, job_id=TEXT),
)

FOLLOW_UPS = st.builds(
    ipc.FollowUp,
    batch_id=st.none() | TEXT,
    type=TEXT,
    payload=JSON,
    key=st.none() | TEXT,
    priority=INT64,
    delay_seconds=FLOATS,
    cost=FLOATS,
)

CHILD_MESSAGES: st.SearchStrategy[ipc.ChildMessage] = st.one_of(
    st.builds(ipc.Ready, pid=st.integers(min_value=1, max_value=2**31)),
    st.builds(ipc.BatchStarted, batch_id=TEXT),
    st.builds(ipc.JobStarted, job_id=TEXT, started_at=st.floats(0, 2e9)),
    st.builds(ipc.JobProgress, job_id=TEXT, progress=st.floats(min_value=0, max_value=100)),
    st.builds(
        ipc.JobCompleted,
        job_id=TEXT,
        result=JSON,
        follow_ups=st.lists(FOLLOW_UPS, max_size=3).map(tuple),
    ),
    st.builds(ipc.JobFailed, job_id=TEXT, error=TEXT, traceback=st.none() | TEXT),
    st.builds(ipc.JobInterrupted, job_id=TEXT),
    st.builds(ipc.JobRateLimited, job_id=TEXT, retry_after=st.floats(0, 1e6)),
    st.builds(ipc.Progress, in_flight=COUNTS, completed=COUNTS, failed=COUNTS),
    st.builds(ipc.Done, completed=COUNTS, failed=COUNTS),
    st.builds(ipc.ChildFailed, error=TEXT),
)

# --- events -------------------------------------------------------------------

PERCENTS = st.floats(min_value=0, max_value=100)
FINISHED = st.sampled_from([JobState.COMPLETED, JobState.FAILED])


@st.composite
def _job_updates(draw: st.DrawFn) -> events.JobUpdate:
    """A ``job:progress`` as the engine sends it: ``progress`` while active,
    ``error`` once failed, ``type`` and ``attempt`` once finished."""
    batch_id, job_id = draw(BATCH_IDS), draw(TEXT)
    if draw(st.booleans()):
        return events.JobUpdate(
            batch_id=batch_id, job_id=job_id, status=JobState.ACTIVE, progress=draw(PERCENTS)
        )
    status = draw(FINISHED)
    return events.JobUpdate(
        batch_id=batch_id,
        job_id=job_id,
        status=status,
        error=draw(TEXT) if status is JobState.FAILED else None,
        type=draw(st.none() | NAMES),
        attempt=draw(st.none() | st.integers(min_value=1, max_value=2**31)),
        duration_ms=draw(st.none() | st.floats(min_value=0, allow_infinity=False)),
    )


#: A strategy per event data class, every class of ``events.EVENT_TYPES``.
EVENT_DATA_OF: dict[type[events.EventData], st.SearchStrategy[events.EventData]] = {
    events.ProcessingStarted: st.builds(events.ProcessingStarted, batch_id=BATCH_IDS),
    events.ProcessingProgress: st.builds(
        events.ProcessingProgress,
        batch_id=BATCH_IDS,
        completed=COUNTS,
        failed=COUNTS,
        total=COUNTS,
    ),
    events.JobUpdate: _job_updates(),
    events.JobRetrying: st.builds(
        events.JobRetrying,
        batch_id=BATCH_IDS,
        job_id=TEXT,
        error=TEXT,
        retry_at=st.none() | FLOATS,
        type=NAMES,
        attempt=st.integers(min_value=1, max_value=2**31),
    ),
    events.RateLimitedJob: st.builds(
        events.RateLimitedJob,
        batch_id=BATCH_IDS,
        job_id=TEXT,
        type=NAMES,
        retry_after=st.floats(0, 1e6),
        resume_at=FLOATS,
        type_wide=st.booleans(),
    ),
    events.RunDone: st.builds(
        events.RunDone,
        batch_id=BATCH_IDS,
        completed=COUNTS,
        failed=COUNTS,
        reason=st.none() | st.sampled_from(["shutdown", "cancelled"]),
    ),
    events.RunError: st.builds(
        events.RunError, batch_id=BATCH_IDS, error=TEXT, restarting=st.booleans()
    ),
}

EVENT_DATA: st.SearchStrategy[events.EventData] = st.one_of(*EVENT_DATA_OF.values())

EVENTS = st.builds(events.Event, seq=st.integers(min_value=1, max_value=2**62), data=EVENT_DATA)

CONTROL_MESSAGES: st.SearchStrategy[control.ControlMessage] = st.one_of(
    st.builds(control.Subscribe, subscribe=st.lists(BATCH_IDS, max_size=3).map(tuple)),
    st.builds(control.Unsubscribe, unsubscribe=st.lists(BATCH_IDS, max_size=3).map(tuple)),
    st.builds(control.ResumeFrom, resume_from=st.integers(min_value=0, max_value=2**62)),
)

# --- HTTP bodies --------------------------------------------------------------

JOB_SPECS = st.builds(
    api.JobSpec,
    payload=JSON,
    type=st.none() | NAMES,
    key=st.none() | NAMES,
    priority=st.integers(min_value=api.MIN_PRIORITY, max_value=api.MAX_PRIORITY),
    delay_seconds=st.floats(min_value=0, allow_infinity=False),
    cost=st.floats(min_value=0, exclude_min=True, allow_infinity=False),
    timeout_seconds=st.none() | st.floats(min_value=0, exclude_min=True, allow_infinity=False),
)
JOB_LISTS = st.lists(JOB_SPECS, max_size=3).map(tuple)
COUNTS_VIEWS = st.builds(
    api.Counts, pending=COUNTS, active=COUNTS, completed=COUNTS, failed=COUNTS
)
BATCH_VIEWS = st.builds(
    api.BatchView,
    batch_id=BATCH_IDS,
    type=NAMES,
    running=st.booleans(),
    engine_id=st.none() | NAMES,
    counts=COUNTS_VIEWS,
    created_at=AWARE_DATETIMES,
    options=JSON_OBJECTS,
    child=st.none()
    | st.builds(
        ChildView,
        pid=COUNTS,
        rss_bytes=COUNTS,
        cpu_seconds=st.floats(min_value=0, allow_infinity=False),
        jobs_run=COUNTS,
    ),
)
JOB_VIEWS = st.builds(
    api.JobView,
    job_id=TEXT,
    batch_id=BATCH_IDS,
    type=NAMES,
    state=st.sampled_from(JobState),
    payload=JSON,
    attempts=COUNTS,
    key=st.none() | NAMES,
    priority=st.integers(min_value=api.MIN_PRIORITY, max_value=api.MAX_PRIORITY),
    result=JSON,
    error=st.none() | TEXT,
    progress=st.none() | st.floats(min_value=0, max_value=100),
    created_at=st.none() | AWARE_DATETIMES,
    started_at=st.none() | AWARE_DATETIMES,
    finished_at=st.none() | AWARE_DATETIMES,
)

BODIES: st.SearchStrategy[Any] = st.one_of(
    st.builds(
        api.CreateBatch,
        jobs=JOB_LISTS,
        type=NAMES,
        batch_id=st.none() | BATCH_IDS,
        # The options the engine acts on have tests of their own.
        options=JSON_OBJECTS.filter(lambda o: not {"after", "autoStart"} & o.keys()),
    ),
    st.builds(api.AddJobs, jobs=JOB_LISTS),
    st.builds(api.EnqueueResult, batch_id=BATCH_IDS, enqueued=COUNTS, duplicates=COUNTS),
    COUNTS_VIEWS,
    BATCH_VIEWS,
    st.builds(api.BatchList, batches=st.lists(BATCH_VIEWS, max_size=2).map(tuple)),
    JOB_VIEWS,
    st.builds(
        api.JobList,
        jobs=st.lists(JOB_VIEWS, max_size=2).map(tuple),
        next_cursor=st.none() | TEXT,
    ),
    st.builds(
        api.ProcessResult,
        status=st.sampled_from(["started", "already-running", "capacity-reached"]),
        batch_id=BATCH_IDS,
    ),
    st.builds(
        api.StatusView,
        running_batches=st.lists(BATCH_IDS, max_size=3).map(tuple),
        active_batches=COUNTS,
        max_batches=COUNTS,
        is_shutting_down=st.booleans(),
        paused=st.booleans(),
        engine_id=NAMES,
        engines=st.lists(
            st.builds(
                api.EngineView,
                engine_id=NAMES,
                host=NAMES,
                pid=COUNTS,
                running_batches=st.lists(BATCH_IDS, max_size=2).map(tuple),
                max_batches=COUNTS,
                last_seen=AWARE_DATETIMES,
            ),
            max_size=2,
        ).map(tuple),
    ),
    st.builds(
        api.HealthView,
        status=st.sampled_from(["ok", "degraded"]),
        services=st.dictionaries(TEXT, TEXT, max_size=3),
        metrics=st.builds(api.HealthMetrics, queue_length=COUNTS, active_workers=COUNTS),
    ),
    st.builds(api.Requeued, requeued=COUNTS),
    st.builds(JobStateView, job_id=TEXT, state=st.sampled_from(JobState)),
    st.builds(api.ErrorBody, error=st.builds(api.ErrorDetail, code=NAMES, message=TEXT)),
)


# --- the two ends of a child's pipes ------------------------------------------


def drain(framer: LineFramer[Any]) -> list[Any]:
    """Every whole message ``framer`` holds, in order."""
    messages = []
    while (message := framer.next_message()) is not NEED_DATA:
        messages.append(message)
    return messages


class FramerPair:
    """The engine and a child, joined by their two pipes, with no I/O at all.

    Each pipe carries one union, so each has one framer at either end: the
    sender's (used to ``encode``) and the receiver's (fed, then drained).
    ``chunks`` cut the bytes in transit, as a pipe is free to.
    """

    def __init__(self) -> None:
        self.parent_out: LineFramer[ipc.ParentMessage] = LineFramer(ipc.ParentMessage)
        self.child_in: LineFramer[ipc.ParentMessage] = LineFramer(ipc.ParentMessage)
        self.child_out: LineFramer[ipc.ChildMessage] = LineFramer(ipc.ChildMessage)
        self.parent_in: LineFramer[ipc.ChildMessage] = LineFramer(ipc.ChildMessage)

    def to_child(
        self, messages: Iterable[ipc.ParentMessage], cuts: Iterable[int] = ()
    ) -> list[ipc.ParentMessage]:
        """Send ``messages`` down the parent's pipe; what the child decodes."""
        return _transfer(self.parent_out, self.child_in, messages, cuts)

    def to_parent(
        self, messages: Iterable[ipc.ChildMessage], cuts: Iterable[int] = ()
    ) -> list[ipc.ChildMessage]:
        """Send ``messages`` up the child's pipe; what the parent decodes."""
        return _transfer(self.child_out, self.parent_in, messages, cuts)


def _transfer(
    sender: LineFramer[Any],
    receiver: LineFramer[Any],
    messages: Iterable[Any],
    cuts: Iterable[int],
) -> list[Any]:
    wire = b"".join(sender.encode(message) for message in messages)
    received: list[Any] = []
    start = 0
    for end in [*sorted(cut for cut in cuts if 0 < cut < len(wire)), len(wire)]:
        receiver.receive_data(wire[start:end])
        received.extend(drain(receiver))
        start = end
    assert receiver.buffered == 0
    return received
