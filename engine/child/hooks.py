"""What the child program lends fault-injection job types: its IPC writer.

A handler's context (``JobContext``) exposes nothing of IPC, and no real job
type needs it. A fault type does: ``garble`` (``engine.testing.faults``)
must put bytes on the engine's pipe that no message would. So the child
program makes its writer reachable from the task of each job it runs
(``expose_raw_ipc_writer``), and such a type calls ``write_raw_ipc``. This
works the same whether the child is a process (``python -m engine.child``)
or a program run in-process over memory streams.

The writer lives in a context variable, so it is the writer of the child
that runs the job: never another child's, and never set outside a job.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["expose_raw_ipc_writer", "write_raw_ipc"]

_RAW_IPC_WRITER: ContextVar[Callable[[bytes], None]] = ContextVar("batchyard_raw_ipc_writer")


def expose_raw_ipc_writer(write: Callable[[bytes], None]) -> None:
    """Make ``write`` the raw IPC writer of the current task (a job's) and of
    the tasks and threads it starts; the child program calls it."""
    _RAW_IPC_WRITER.set(write)


def write_raw_ipc(data: bytes) -> None:
    """Write ``data`` to the engine as it is, past the framing and the outbox.

    Raises:
        LookupError: the caller is not a job run by a child program.
        OSError: the engine's end of the pipe is gone.
    """
    _RAW_IPC_WRITER.get()(data)
