"""``ctx.enqueue`` on trio's MockClock with in-process children: follow-up
jobs exist if and only if their job completed, a running batch picks up
what it adds to itself, named batches and flows, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from engine.core.engine import Engine
from engine.core.values import JobRequest
from engine.errors import UnknownJobType
from engine.jobs.follow_ups import FollowUps
from engine.jobs.registry import REGISTRY
from engine.testing import collect_until
from protocols.events import RunDone
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener


def _fan_out(kind: str, payloads: list[Any], **extra: Any) -> JobRequest:
    return JobRequest(type=kind, payload={"type": "echo", "payloads": payloads, **extra})


async def _run(engine: Engine, batch_id: str) -> RunDone:
    with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
        await engine.start(batch_id)
        done = (await collect_until(sub))[-1].data
    assert isinstance(done, RunDone)
    return done


async def _jobs(engine: Engine, batch_id: str) -> list[Any]:
    return list((await engine.list_jobs(batch_id, limit=1000)).jobs)


async def test_a_running_batch_runs_the_jobs_it_adds_to_itself(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    # ``def`` handlers run in threads, which a mock clock would race: the
    # e2e tests cover ``fan-out-sync`` with real children.
    kind = "fan-out"
    async with fake_engine(concurrency=2) as engine:
        batch_id, _ = await engine.create_batch(
            None, kind, [_fan_out(kind, [1, 2**70, {"x": [3]}])]
        )
        done = await _run(engine, batch_id)
        jobs = await _jobs(engine, batch_id)
    assert (done.completed, done.failed) == (4, 0)
    assert (jobs[0].type, jobs[0].state) == (kind, JobState.COMPLETED)
    added = [(job.type, job.payload, job.result, job.state) for job in jobs[1:]]
    assert added == [("echo", p, p, JobState.COMPLETED) for p in [1, 2**70, {"x": [3]}]]


async def test_a_job_that_fails_adds_nothing_even_when_retried(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(job_max_attempts=3) as engine:
        batch_id, _ = await engine.create_batch(
            None, "fan-out", [_fan_out("fan-out", [1, 2], **{"raise": "after enqueueing"})]
        )
        done = await _run(engine, batch_id)
        (job,) = await _jobs(engine, batch_id)
    assert (done.completed, done.failed) == (0, 1)
    assert job.attempts == 3 and "after enqueueing" in (job.error or "")


async def test_jobs_go_to_a_named_batch_and_a_flow_starts_after(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine() as engine:
        split, _ = await engine.create_batch(
            "split",
            "fan-out",
            [_fan_out("fan-out", ["a", "b"], batch="embed", fields={"priority": 3, "key": "k"})],
        )
        await engine.create_batch("embed", "echo", [], {"after": ["split"]})
        with trio.fail_after(60), engine.subscribe(["embed"]) as sub:
            await engine.start(split)
            done = (await collect_until(sub))[-1].data
        embed = await _jobs(engine, "embed")
    assert isinstance(done, RunDone) and done.completed == 1  # the key held the second back
    assert [(job.payload, job.priority, job.key) for job in embed] == [("a", 3, "k")]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"type": "echo", "payloads": [1], "batch": "nowhere"}, "ctx.enqueue: no batch 'nowhere'"),
        ({"type": "no-such-type", "payloads": [1]}, "unknown job type 'no-such-type'"),
        ({"type": "echo", "payloads": [1], "fields": {"priority": 2**64}}, "priority"),
        ({"type": "echo", "payloads": [1], "fields": {"colour": 1}}, "colour"),
        ({"type": "echo", "payloads": [1], "fields": {"cost": 50}}, "exceeds the batch rate"),
    ],
    ids=["missing-batch", "unknown-type", "bad-field", "unknown-field", "cost"],
)
async def test_a_refused_follow_up_fails_its_job_with_a_clear_error(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock, payload: Any, error: str
) -> None:
    from engine.config.settings import RateLimit

    async with fake_engine(rate_limit=RateLimit(count=10, per_seconds=1)) as engine:
        batch_id, _ = await engine.create_batch(
            None, "fan-out", [JobRequest(type="fan-out", payload=payload)]
        )
        done = await _run(engine, batch_id)
        jobs = await _jobs(engine, batch_id)
    assert (done.completed, done.failed) == (0, 1)
    assert len(jobs) == 1 and error in (jobs[0].error or "")


def test_enqueue_checks_at_the_call() -> None:
    follow_ups = FollowUps(REGISTRY)
    follow_ups.enqueue("echo", {"n": 2**70}, "other", priority=2, delay_seconds=1.5, cost=2)
    follow_ups.enqueue("echo", None, delaySeconds=2.5)  # as the wire spells it
    with pytest.raises(UnknownJobType, match=r"ctx\.enqueue: unknown job type 'nope'"):
        follow_ups.enqueue("nope", 1)
    with pytest.raises(ValueError, match="invalid batch id"):
        follow_ups.enqueue("echo", 1, "no spaces allowed")
    with pytest.raises(TypeError, match="payload is not JSON"):
        follow_ups.enqueue("echo", object())
    with pytest.raises(TypeError, match="colour"):
        follow_ups.enqueue("echo", 1, colour="red")
    job, wire_named = follow_ups.taken()
    assert (wire_named.batch_id, wire_named.delay_seconds) == (None, 2.5)
    assert (job.batch_id, job.type, job.payload, job.priority) == (
        "other",
        "echo",
        {"n": 2**70},
        2,
    )
    assert (job.delay_seconds, job.cost) == (1.5, 2.0)
