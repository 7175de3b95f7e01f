"""The child program driven in-process for the child's tests: job types, a
stand-in for the engine's end of the pipes over memory streams with the
engine's framing, and readers of what the child reported. Used by
``test_child.py`` and the other ``test_child_*`` files.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio
import trio.testing

from engine.child.program import serve_child
from engine.jobs.registry import JobContext, JobRegistry
from protocols import ipc
from protocols.framing import NEED_DATA, LineFramer

_JOB_REPORTS = (ipc.JobStarted, ipc.JobProgress, ipc.JobCompleted, ipc.JobFailed)


# --- job types ----------------------------------------------------------------


async def _echo(payload: Any, ctx: JobContext) -> Any:
    return payload


def _double_in_thread(payload: Any, ctx: JobContext) -> Any:
    ctx.report_progress(50)
    return {
        "doubled": payload * 2,
        "in_thread": threading.current_thread() is not threading.main_thread(),
    }


async def _boom(payload: Any, ctx: JobContext) -> Any:
    raise ValueError(f"kaput {payload}")


async def _steps(payload: Any, ctx: JobContext) -> Any:
    for percent in (-5, 50, 150):
        ctx.report_progress(percent)
        await trio.sleep(1.0)
    return {"attempt": ctx.attempt, "batch": ctx.batch_id, "job": ctx.job_id}


async def _nap(payload: Any, ctx: JobContext) -> Any:
    await trio.sleep(payload["seconds"])
    return payload["seconds"]


async def _opaque(payload: Any, ctx: JobContext) -> Any:
    return object()


@attrs.define
class _Gauge:
    """A job type that counts how many of its jobs run at once."""

    running: int = 0
    peak: int = 0

    async def handler(self, payload: Any, ctx: JobContext) -> Any:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await trio.sleep(1.0)
        finally:
            self.running -= 1


def _registry(gauge: _Gauge | None = None) -> JobRegistry:
    registry = JobRegistry()
    registry.register("echo", _echo)
    registry.register("double", _double_in_thread)
    registry.register("boom", _boom)
    registry.register("steps", _steps)
    registry.register("nap", _nap)
    registry.register("opaque", _opaque)
    registry.register("gauge", (gauge or _Gauge()).handler)
    return registry


def _job(
    job_id: str, type: str, payload: Any = None, attempt: int = 1, cost: float = 1.0
) -> ipc.JobToRun:
    return ipc.JobToRun(job_id=job_id, type=type, payload=payload, attempt=attempt, cost=cost)


def _run(*jobs: ipc.JobToRun) -> ipc.RunJobs:
    return ipc.RunJobs(jobs=jobs)


# --- the engine's end ---------------------------------------------------------


class _Engine:
    """The engine's end of an in-process child, framed as the engine frames it."""

    def __init__(self, to_child: trio.abc.SendStream, from_child: trio.abc.ReceiveStream) -> None:
        self._to_child = to_child
        self._from_child = from_child
        self._encoder: LineFramer[ipc.ParentMessage] = LineFramer(ipc.ParentMessage)
        self._decoder: LineFramer[ipc.ChildLine] = LineFramer(ipc.ChildLine)
        self._unread: list[ipc.ChildMessage] = []
        self.code: int | None = None
        self.exited = trio.Event()

    async def send(self, *messages: ipc.ParentMessage) -> None:
        await self._to_child.send_all(b"".join(self._encoder.encode(m) for m in messages))

    async def send_raw(self, data: bytes) -> None:
        await self._to_child.send_all(data)

    async def close(self) -> None:
        await self._to_child.aclose()

    async def receive(self) -> ipc.ChildMessage | None:
        """The next message (one of a ``Reports`` line's, in order), or None
        once the child's end is closed."""
        while not self._unread:
            while (line := self._decoder.next_message()) is NEED_DATA:
                data = await self._from_child.receive_some()
                if not data:
                    assert not self._decoder.buffered, "the child stopped mid-line"
                    return None
                self._decoder.receive_data(data)
            self._unread.extend(ipc.facts_of(line))
        return self._unread.pop(0)

    async def receive_until(self, kind: type[Any]) -> list[ipc.ChildMessage]:
        """Messages up to and including the first ``kind``."""
        seen: list[ipc.ChildMessage] = []
        while True:
            message = await self.receive()
            assert message is not None, f"the child ended before {kind.__name__}: {seen}"
            seen.append(message)
            if isinstance(message, kind):
                return seen

    async def rest(self) -> list[ipc.ChildMessage]:
        """Every message until the child's end closes."""
        seen: list[ipc.ChildMessage] = []
        while (message := await self.receive()) is not None:
            seen.append(message)
        return seen

    async def wait(self) -> int:
        await self.exited.wait()
        assert self.code is not None
        return self.code

    async def begin(
        self, concurrency: int = 4, batch_id: str = "b1", rate: ipc.StartRate | None = None
    ) -> None:
        """Ready, Begin (with the batch's ``rate``), BatchStarted."""
        assert await self.receive() == ipc.Ready(pid=os.getpid())
        await self.send(ipc.Begin(batch_id=batch_id, concurrency=concurrency, rate=rate))
        assert await self.receive() == ipc.BatchStarted(batch_id=batch_id)


def _start_child(
    nursery: trio.Nursery,
    registry: JobRegistry | None = None,
    clock: Callable[[], float] = time.time,
    writes: list[bytes] | None = None,
) -> _Engine:
    """A child program in ``nursery`` reading ``clock``; each of its writes
    is also appended to ``writes`` when given."""
    to_child, child_in = trio.testing.memory_stream_one_way_pair()
    from_child = trio.testing.MemoryReceiveStream()
    engine = _Engine(to_child, from_child)

    def write(data: bytes) -> None:
        if writes is not None:
            writes.append(data)
        from_child.put_data(data)

    async def run() -> None:
        engine.code = await serve_child(child_in, write, registry or _registry(), clock)
        engine.exited.set()
        from_child.put_eof()

    nursery.start_soon(run)
    return engine


async def _nothing_arrives(engine: _Engine, seconds: float = 1.0) -> bool:
    """True when the child says nothing for ``seconds`` (of mock time)."""
    with trio.move_on_after(seconds) as scope:
        message = await engine.receive()
        raise AssertionError(f"unexpected message: {message!r}")
    return scope.cancelled_caught


def _terminal(messages: list[ipc.ChildMessage]) -> dict[str, ipc.JobCompleted | ipc.JobFailed]:
    return {m.job_id: m for m in messages if isinstance(m, ipc.JobCompleted | ipc.JobFailed)}


def _story(messages: list[ipc.ChildMessage], job_id: str) -> list[str]:
    """What the child reported about one job, in order."""
    told = []
    for m in messages:
        if isinstance(m, ipc.JobProgress) and m.job_id == job_id:
            told.append(f"progress {m.progress}")
        elif isinstance(m, _JOB_REPORTS) and m.job_id == job_id:
            told.append(type(m).__name__)
    return told


def _interrupted(messages: list[ipc.ChildMessage]) -> list[str]:
    return sorted(m.job_id for m in messages if isinstance(m, ipc.JobInterrupted))
