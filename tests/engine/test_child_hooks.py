"""The child program's hook for fault types: the raw IPC writer of the job's
own child, reachable only from a job's task."""

from __future__ import annotations

import pytest
import trio

from engine.child.hooks import expose_raw_ipc_writer, write_raw_ipc


def test_outside_a_job_there_is_no_writer() -> None:
    with pytest.raises(LookupError):
        write_raw_ipc(b"x")


async def test_each_job_task_reaches_its_own_childs_writer_only() -> None:
    written: dict[str, list[bytes]] = {"a": [], "b": []}

    async def job(child: str) -> None:
        expose_raw_ipc_writer(written[child].append)
        await trio.lowlevel.checkpoint()
        write_raw_ipc(child.encode())
        await trio.to_thread.run_sync(write_raw_ipc, b"from a thread")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(job, "a")
            nursery.start_soon(job, "b")
    assert written == {"a": [b"a", b"from a thread"], "b": [b"b", b"from a thread"]}
    with pytest.raises(LookupError):
        write_raw_ipc(b"x")
