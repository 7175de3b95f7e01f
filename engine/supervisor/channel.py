"""The parent end of a child's IPC pipes.

This is the one place where trio stream errors and framing errors become
engine errors: code above it sees ``ChildCrashed`` (the child broke the pipe
or spoke malformed IPC) and ``None`` for an orderly EOF, never
``trio.BrokenResourceError`` or ``ProtocolError``.

``receive_batch`` returns every message that one read brought in (a
``Reports`` line unpacked into the messages it holds), so the runner can
record a burst of results in one store transaction.

``waiting_since`` says since when the parent has been waiting for the child
to say anything (None while it is not waiting: what it read is still being
recorded), which is what tells a silent child (``engine.core.silence``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from engine.errors import ChildCrashed
from protocols import ipc
from protocols.errors import ProtocolError
from protocols.framing import NEED_DATA, LineFramer
from protocols.run_jobs import run_jobs_line

__all__ = ["ChildChannel"]

_READ_CHUNK = 256 * 1024


class ChildChannel:
    """Messages to and from one child over two owned streams.

    Args:
        to_child: the write end of the child's inbound pipe (owned).
        from_child: the read end of the child's outbound pipe (owned).
    """

    def __init__(self, to_child: trio.abc.SendStream, from_child: trio.abc.ReceiveStream) -> None:
        self._to_child = to_child
        self._from_child = from_child
        self._encoder: LineFramer[ipc.ParentMessage] = LineFramer(ipc.ParentMessage)
        self._decoder: LineFramer[ipc.ChildLine] = LineFramer(ipc.ChildLine)
        self._send_lock = trio.Lock()
        self._eof = False
        #: When the pending read began, on trio's clock; None when no read waits.
        self.waiting_since: float | None = None

    async def send(self, message: ipc.ParentMessage) -> None:
        """Send one message.

        Cancellation: may have partially happened (part of a line written);
        the child then sees malformed IPC, so a cancelled send is followed by
        stopping the child.

        Raises:
            ChildCrashed: the child's end of the pipe is gone.
            LocalProtocolError: the message holds something JSON cannot carry.
        """
        await self._write(self._encoder.encode(message))

    async def send_run_jobs(self, jobs: Sequence[dict[str, Any]]) -> None:
        """Send one ``RunJobs`` of objects ``protocols.run_jobs.job_object``
        made (unchecked there); as ``send`` otherwise."""
        await self._write(run_jobs_line(jobs))

    async def _write(self, line: bytes) -> None:
        async with self._send_lock:
            try:
                await self._to_child.send_all(line)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ChildCrashed(f"the child's IPC pipe is closed: {exc}") from exc

    async def receive_batch(self) -> list[ipc.ChildMessage]:
        """Every message one read brings (at least one), or ``[]`` at EOF.

        Cancellation: atomic for whole messages; bytes read but not yet
        framed stay buffered for the next call.

        Raises:
            ChildCrashed: the child sent a malformed line, or stopped in the
                middle of one.
        """
        while True:
            batch = self._drain()
            if batch or self._eof:
                return batch
            self.waiting_since = trio.current_time()
            try:
                data = await self._from_child.receive_some(_READ_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ChildCrashed(f"the child's IPC pipe broke: {exc}") from exc
            finally:
                self.waiting_since = None
            if not data:
                self._eof = True
                if self._decoder.buffered:
                    raise ChildCrashed("the child closed its IPC pipe in the middle of a line")
            self._decoder.receive_data(data)

    def _drain(self) -> list[ipc.ChildMessage]:
        messages: list[ipc.ChildMessage] = []
        try:
            while (line := self._decoder.next_message()) is not NEED_DATA:
                messages.extend(ipc.facts_of(line))
        except ProtocolError as exc:
            # What came before the bad line is good and is delivered first;
            # the broken framer raises again on the next call.
            if messages:
                return messages
            raise ChildCrashed(f"malformed IPC from the child: {exc}") from exc
        return messages

    async def aclose(self) -> None:
        """Close both pipes. Idempotent.

        Cancellation: the pipes are closed even if cancelled.
        """
        await self._to_child.aclose()
        await self._from_child.aclose()
