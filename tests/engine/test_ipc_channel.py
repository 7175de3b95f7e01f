"""The parent end of a child's pipes: every stream and framing error becomes
ChildCrashed, and good messages before a bad line still arrive."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from engine.errors import ChildCrashed
from engine.supervisor.channel import ChildChannel
from protocols import ipc
from protocols.framing import LineFramer, reports_lines
from protocols.run_jobs import job_object

_CHILD = LineFramer(ipc.ChildMessage)


def _channel() -> tuple[ChildChannel, trio.testing.MemoryReceiveStream, trio.abc.ReceiveStream]:
    to_child, child_reads = trio.testing.memory_stream_one_way_pair()
    from_child = trio.testing.MemoryReceiveStream()
    return ChildChannel(to_child, from_child), from_child, child_reads


async def test_a_burst_arrives_as_one_batch() -> None:
    channel, from_child, _ = _channel()
    from_child.put_data(
        _CHILD.encode(ipc.Ready(pid=1)) + _CHILD.encode(ipc.Done(completed=1, failed=0))
    )
    with trio.fail_after(5):
        assert await channel.receive_batch() == [ipc.Ready(pid=1), ipc.Done(completed=1, failed=0)]
        from_child.put_eof()
        assert await channel.receive_batch() == []


async def test_a_reports_line_arrives_as_the_messages_it_holds() -> None:
    channel, from_child, _ = _channel()
    burst: list[ipc.ChildMessage] = [
        ipc.JobStarted(job_id="a", started_at=1.0),
        ipc.JobCompleted(job_id="a", result=None),
        ipc.Progress(in_flight=0, completed=1, failed=0),
    ]
    from_child.put_data(
        _CHILD.encode(ipc.Ready(pid=1))
        + reports_lines([_CHILD.encode_object(message) for message in burst])
    )
    with trio.fail_after(5):
        assert await channel.receive_batch() == [ipc.Ready(pid=1), *burst]


async def test_good_messages_before_a_bad_line_come_first() -> None:
    channel, from_child, _ = _channel()
    from_child.put_data(_CHILD.encode(ipc.Ready(pid=1)) + b"garbage\n")
    with trio.fail_after(5):
        assert await channel.receive_batch() == [ipc.Ready(pid=1)]
        with pytest.raises(ChildCrashed, match="malformed IPC"):
            await channel.receive_batch()


async def test_eof_in_the_middle_of_a_line_is_a_crash() -> None:
    channel, from_child, _ = _channel()
    from_child.put_data(b'{"type": "ready", ')
    from_child.put_eof()
    with trio.fail_after(5), pytest.raises(ChildCrashed, match="middle of a line"):
        await channel.receive_batch()


async def test_sending_to_a_closed_pipe_is_a_crash() -> None:
    channel, _, child_reads = _channel()
    with trio.fail_after(5):
        await channel.send(ipc.Shutdown())
        assert await child_reads.receive_some() == LineFramer(ipc.ParentMessage).encode(
            ipc.Shutdown()
        )
        await child_reads.aclose()
        with pytest.raises(ChildCrashed, match="closed"):
            await channel.send(ipc.Cancel())


async def test_run_jobs_from_job_values_reach_the_child_as_run_jobs() -> None:
    channel, _, child_reads = _channel()
    child: LineFramer[ipc.ParentMessage] = LineFramer(ipc.ParentMessage)
    with trio.fail_after(5):
        await channel.send_run_jobs([job_object("a", "t", {"n": 1}, 2, 30.0, 1.5)])
        child.receive_data(await child_reads.receive_some())
    assert child.next_message() == ipc.RunJobs(
        jobs=(
            ipc.JobToRun(
                job_id="a", type="t", payload={"n": 1}, attempt=2, timeout_seconds=30.0, cost=1.5
            ),
        )
    )
    await child_reads.aclose()
    with trio.fail_after(5), pytest.raises(ChildCrashed, match="closed"):
        await channel.send_run_jobs([job_object("b", "t", None, 1, None, 1.0)])
