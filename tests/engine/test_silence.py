"""A child that says nothing, on the mock clock: the watch pings a quiet
child, kills a silent one at ``CHILD_SILENCE_SECONDS`` (an ``error``, its
jobs released as after a crash), and leaves alone one that answers, one
whose run is busy recording, and every child when the limit is 0."""

from __future__ import annotations

import attrs
import pytest
import trio
from trio.testing import MockClock

from engine.core.held import HeldJobs
from engine.core.watch import ChildWatch, Usage
from engine.testing import collect_until, jobs_of
from protocols import ipc
from tests.conftest import FakeEngineOpener

LIMIT = 6.0


@attrs.define
class _Pipe:
    """The run's side of a child's pipe, as the watch sees it."""

    answers: bool
    full: bool = False  # the child's inbound pipe: a ping cannot be written
    waiting_since: float | None = None
    pings: list[float] = attrs.Factory(list)
    killed: list[float] = attrs.Factory(list)

    def wait(self) -> None:
        """The run starts waiting for the child's next message."""
        self.waiting_since = trio.current_time()

    async def ask(self, message: ipc.ParentMessage) -> None:
        assert message == ipc.Ping()
        self.pings.append(trio.current_time())
        if self.full:
            await trio.sleep_forever()
        if self.answers:  # the Pong ends the read; the run reads again
            self.wait()

    def kill(self) -> None:
        self.killed.append(trio.current_time())


async def _never(_: object = None) -> None:
    raise AssertionError("not expected")


def _watch(pipe: _Pipe, limit: float = LIMIT) -> ChildWatch:
    return ChildWatch(
        pid=42,
        held=HeldJobs(trio.CapacityLimiter(2)),
        grace_seconds=5.0,
        max_jobs=0,
        max_rss_bytes=0,
        timeout_of=lambda job: None,
        retry_at=lambda job: None,
        recycle=_never,
        replace=pipe.kill,
        ask=pipe.ask,
        sample=lambda pid: Usage(rss_bytes=1, cpu_seconds=0.0),
        silence_seconds=limit,
        waiting_since=lambda: pipe.waiting_since,
    )


async def _watch_for(watch: ChildWatch, seconds: float) -> None:
    with trio.move_on_after(seconds):
        await watch.run()


async def test_a_quiet_child_that_answers_is_left_alone(autojump_clock: MockClock) -> None:
    pipe = _Pipe(answers=True)
    watch = _watch(pipe)
    pipe.wait()
    await _watch_for(watch, LIMIT * 10)
    assert pipe.killed == [] and watch.silenced is None
    # Pinged a third of the limit into each quiet period, and only then.
    assert pipe.pings[:3] == [pytest.approx(LIMIT / 3 * n) for n in (1, 2, 3)]


async def test_a_child_that_does_not_answer_is_killed_at_the_limit(
    autojump_clock: MockClock,
) -> None:
    pipe = _Pipe(answers=False)
    watch = _watch(pipe)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        await trio.sleep(1.0)
        pipe.wait()  # quiet from t=1
        began = trio.current_time()
    assert pipe.pings == [pytest.approx(began + LIMIT / 3)]  # once per quiet period
    assert pipe.killed == [pytest.approx(began + LIMIT, abs=0.01)]
    assert watch.silenced is not None and "sent nothing for 6 s" in watch.silenced
    assert not watch.replaced  # a crash, not a replacement on purpose


async def test_a_child_whose_pipe_takes_no_ping_is_killed_at_the_limit(
    autojump_clock: MockClock,
) -> None:
    pipe = _Pipe(answers=True, full=True)
    watch = _watch(pipe)
    pipe.wait()
    await _watch_for(watch, LIMIT * 10)
    assert pipe.pings == [pytest.approx(LIMIT / 3)]
    assert pipe.killed == [pytest.approx(LIMIT)] and watch.silenced is not None


async def test_time_the_run_spends_recording_does_not_count(autojump_clock: MockClock) -> None:
    pipe = _Pipe(answers=False)
    watch = _watch(pipe)
    pipe.waiting_since = None  # busy with what the child said (a slow store)
    await _watch_for(watch, LIMIT * 10)
    assert pipe.pings == [] and pipe.killed == []


async def test_a_limit_of_zero_never_pings_nor_kills(autojump_clock: MockClock) -> None:
    pipe = _Pipe(answers=False)
    watch = _watch(pipe, limit=0.0)
    pipe.wait()
    await _watch_for(watch, 3600.0)
    assert pipe.pings == [] and pipe.killed == [] and watch.silenced is None


async def test_an_engine_kills_a_hung_child_and_the_batch_goes_on(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(
        child_silence_seconds=LIMIT, concurrency=1, job_max_attempts=1, batch_retries=1
    ) as engine:
        jobs = jobs_of("hang", [{"seconds": 600}]) + jobs_of("noop", [None] * 2)
        batch_id, _ = await engine.create_batch(None, "hang", jobs)
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "job:progress")
            began = trio.current_time()
            error = (await collect_until(sub, lambda e: e.event == "error"))[-1]
            took = trio.current_time() - began
            rest = await collect_until(sub, lambda e: e.event in ("done", "error"))
        page = await engine.list_jobs(batch_id)
        counts = await engine.counts(batch_id)
    assert took == pytest.approx(LIMIT, abs=1.0)
    assert "sent nothing for 6 s" in error.data.error and error.data.restarting
    assert rest[-1].event == "done"  # the fresh child ran the other jobs
    hang = next(job for job in page.jobs if job.type == "hang")
    assert (hang.state.value, hang.attempts) == ("failed", 1)  # it started: counted
    assert counts.completed == 2 and counts.pending == counts.active == 0


async def test_an_engine_leaves_a_long_quiet_job_alone(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(child_silence_seconds=LIMIT) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 100}])
        )
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        counts = await engine.counts(batch_id)
    assert seen[-1].event == "done" and counts.completed == 1


async def test_with_the_check_off_a_hung_child_is_waited_for(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(child_silence_seconds=0) as engine:
        batch_id, _ = await engine.create_batch(None, "hang", jobs_of("hang", [{"seconds": 300}]))
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        assert seen[-1].event == "done" and trio.current_time() >= 300
        assert (await engine.counts(batch_id)).completed == 1
