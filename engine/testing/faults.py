"""Fault-injection job types, registered wherever ``engine.testing`` is
imported: in an engine and its children when ``BATCHYARD_JOBS`` names it,
and in no engine that does not.

* ``crash`` (``{"exitCode": int}``): the child process exits at once with
  that code, as a segfaulting extension or an OOM kill would end it;
* ``hang`` (``{"seconds": float}``): blocks the child's main thread, deaf to
  cancellation and to the shutdown message, as a stuck C call would;
* ``garble``: writes a line that is not a message onto the child's IPC pipe
  (through the child program's hook for fault types, ``engine.child.hooks``);
* ``pid``: returns the process id of the child that ran it;
* ``steps`` (``{"steps": int}``): a plain ``def`` handler reporting progress;
* ``sleep-sync`` (``{"seconds": float}``): a plain ``def`` handler sleeping
  in its worker thread, saying nothing meanwhile (its child's loop runs on).
"""

from __future__ import annotations

import os
import time
from typing import Any

import trio

from engine.child.hooks import write_raw_ipc
from engine.jobs.registry import JobContext, job_type

__all__ = ["crash", "garble", "hang", "pid", "sleep_sync", "steps"]


@job_type("crash")
async def crash(payload: Any, ctx: JobContext) -> None:
    """Ends the child process at once with ``exitCode`` (default 3)."""
    code = payload.get("exitCode", 3) if isinstance(payload, dict) else 3
    os._exit(code if isinstance(code, int) else 3)


@job_type("hang")
async def hang(payload: Any, ctx: JobContext) -> None:
    """Blocks the child's main thread for ``seconds``, ignoring cancellation."""
    seconds = payload.get("seconds", 3600) if isinstance(payload, dict) else 3600
    time.sleep(float(seconds))  # noqa: ASYNC251 - blocking on purpose


@job_type("garble")
async def garble(payload: Any, ctx: JobContext) -> None:
    """Writes a line that is not IPC onto the child's IPC pipe, as a handler
    that scribbled on a file descriptor it did not own would, then waits to
    be stopped (the engine takes the line for a crash of the child)."""
    write_raw_ipc(b"this is not a message\n")
    await trio.sleep_forever()


@job_type("pid")
async def pid(payload: Any, ctx: JobContext) -> int:
    """Returns the process id of the child that ran it."""
    return os.getpid()


@job_type("steps")
def steps(payload: Any, ctx: JobContext) -> int:
    """A plain ``def`` handler that reports progress ``steps`` times."""
    count = payload.get("steps", 4) if isinstance(payload, dict) else 4
    for step in range(1, count + 1):
        ctx.report_progress(100 * step / count)
    return int(count)


@job_type("sleep-sync")
def sleep_sync(payload: Any, ctx: JobContext) -> None:
    """Sleeps ``seconds`` in its worker thread, reporting nothing."""
    seconds = payload.get("seconds", 1.0) if isinstance(payload, dict) else 1.0
    time.sleep(float(seconds))
