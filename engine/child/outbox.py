"""What the child has to tell the engine, queued and written in bursts.

Design notes
------------
Every message the child sends is encoded at once (so a result JSON cannot
carry fails its job where it was produced) and queued. The queue is
written as one ``Reports`` line (``protocols.ipc``) once per scheduling
round. A job's start must be written before its handler runs, so a job
that starts waits for its line to be written (``send_written``): the
first such wait to end in a round writes every line queued in the round
before, and ``write_loop`` writes what no start carries (the results of
the last jobs, ``Pong``) two rounds after they came. A round's writes
cost the child one system call and the engine one line to decode,
whatever the number of jobs that finished and started in it.

The outbox also keeps the child's tally (jobs held, completed, failed):
each write that carries finished jobs ends with a ``Progress`` line, so the
engine's counts move with the results.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from protocols import ipc
from protocols.framing import LineFramer, reports_lines

__all__ = ["Outbox"]


class Outbox:
    """The child's queued lines and its tally.

    Args:
        write: writes bytes to the engine, all of them, blocking if it must;
            raises ``OSError`` when the engine's end is gone.
    """

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._lines: list[bytes] = []
        #: Lines queued, and lines written (or dropped), since the start.
        self._queued_total = 0
        self._written_total = 0
        #: The last line a ``send_written`` will flush through.
        self._promised_total = 0
        self._has_lines = trio.Event()
        self._broken = False
        self._encoder: LineFramer[ipc.ChildMessage] = LineFramer(ipc.ChildMessage)
        #: Jobs the child holds: received and not yet answered.
        self._in_flight = 0
        self.completed = 0
        self.failed = 0
        self._finished_since_progress = 0

    def send(self, message: ipc.ChildMessage) -> None:
        """Encode and queue one message; it is written with the next start's
        line (``send_written``), else by ``write_loop`` two rounds later.

        Raises:
            LocalProtocolError: the message holds something JSON cannot
                carry; nothing was queued.
        """
        self._lines.append(self._encoder.encode_object(message))
        self._has_lines.set()
        self._queued_total += 1

    async def send_written(self, message: ipc.ChildMessage) -> None:
        """Queue ``message`` and return once it was written: at the start of
        the next scheduling round, so the lines the other tasks queue in
        this one share the write. The write of the first task to return
        carries them all; the others find theirs written.

        Cancellation: the message is written all the same, then
        ``Cancelled`` is raised.

        Raises:
            LocalProtocolError: as ``send``; nothing was queued.
        """
        self.send(message)
        line = self._queued_total
        # The writer leaves these lines to this flush: a round's lines then
        # go out in one write, not in the writer's and this one's.
        self._promised_total = line
        try:
            await trio.lowlevel.checkpoint()
        finally:
            if self._written_total < line:
                self.flush()

    def count_received(self, jobs: int) -> None:
        """The child received ``jobs`` more jobs to answer (``in_flight``)."""
        self._in_flight += jobs

    def count_answered(self) -> None:
        """A job the child held was answered (with any outcome)."""
        self._in_flight -= 1

    def count_finished(self, *, failed: bool) -> None:
        """A job the child held was answered completed or failed."""
        if failed:
            self.failed += 1
        else:
            self.completed += 1
        self._finished_since_progress += 1

    def flush(self) -> None:
        """Write every queued line now, with a ``Progress`` line when jobs
        finished since the last one. After the engine's end broke, lines are
        dropped: nobody is left to read them."""
        if not self._lines:
            return
        if self._finished_since_progress:
            self._finished_since_progress = 0
            tally = ipc.Progress(
                in_flight=self._in_flight, completed=self.completed, failed=self.failed
            )
            self.send(tally)
        data = reports_lines(self._lines)
        self._lines.clear()
        self._written_total = self._queued_total
        if self._broken:
            return
        try:
            self._write(data)
        except OSError:
            self._broken = True

    async def write_loop(self) -> None:
        """Flush in bursts: once per scheduling round in which lines came.

        Cancellation: lines still queued stay queued for a final ``flush``.
        """
        while True:
            await self._has_lines.wait()
            self._has_lines = trio.Event()
            # Let the other tasks runnable now add their lines first, so a
            # burst of results costs one write.
            await trio.lowlevel.checkpoint()
            if self._written_total >= self._promised_total:
                self.flush()
