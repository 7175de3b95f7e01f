"""The child process: ``python -m engine.child --ipc-in FD --ipc-out FD
--parent-pid PID --jobs MODULES``.

Design notes
------------
The process loads the job modules, then runs the child program
(``engine.child.program``) over its two pipes: it reads ``--ipc-in`` and
writes ``--ipc-out`` with whole blocking writes. Once the program has
returned, the process shuts logging down (``logging.shutdown``: the
handlers of job modules flush and close, so buffered records are not
lost), flushes its stdout and stderr and exits at once, without the rest of
the interpreter's teardown (``atexit`` hooks of job modules do not run).

Noticing the engine's death: EOF on ``--ipc-in`` ends the child at once. A
job that blocks the main thread (a ``hang``) would keep the loop from seeing
that EOF, so a daemon thread also watches the parent pid and calls
``os._exit`` when the child is orphaned. Either way no orphan outlives its
engine by more than ``_ORPHAN_POLL_SECONDS`` plus a scheduling delay.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import trio

from engine.child.program import ENGINE_GONE, serve_child
from engine.errors import JobError
from engine.jobs.registry import REGISTRY, load_job_modules

__all__ = ["main"]

#: How often the orphan watchdog looks at the parent pid. A fifth of a second
#: keeps the contract's "children exit within 2 s of the engine's death" with
#: room to spare on a loaded machine, while costing nothing measurable.
_ORPHAN_POLL_SECONDS = 0.2


def _blocking_writer(fd: int) -> Callable[[bytes], None]:
    """Whole writes to ``fd``, blocking while the pipe is full.

    Writes are synchronous so that a line is on its way before the next
    statement runs (see ``Outbox.flush``); a full pipe means the engine is
    behind, and the child waiting for it is the right backpressure.
    """
    os.set_blocking(fd, True)

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return write


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(_ORPHAN_POLL_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(ENGINE_GONE)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse the pipe descriptors, load job modules, run."""
    parser = argparse.ArgumentParser(prog="python -m engine.child")
    parser.add_argument("--ipc-in", type=int, required=True)
    parser.add_argument("--ipc-out", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--jobs", default="")
    args = parser.parse_args(argv)
    # A terminal's Ctrl-C reaches the whole process group, children too; the
    # engine stops its children itself (``Shutdown``, then SIGKILL after the
    # grace), so a child ignores SIGINT rather than dying mid-job with a
    # traceback. (trio leaves an ignored SIGINT alone.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()
    if os.getppid() != args.parent_pid:
        return ENGINE_GONE
    try:
        load_job_modules([m for m in args.jobs.split(",") if m])
    except JobError as exc:
        print(f"batchyard child: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        async with trio.lowlevel.FdStream(args.ipc_in) as ipc_in:
            return await serve_child(ipc_in, _blocking_writer(args.ipc_out), REGISTRY)

    code = trio.run(run)
    # Everything the engine must hear has been written. The interpreter's
    # teardown (tens of milliseconds with the job modules loaded) would only
    # delay the engine's seeing the exit, and with it the batch's ``done``;
    # what a handler logged or printed is flushed first.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
