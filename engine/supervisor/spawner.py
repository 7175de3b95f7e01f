"""How a child comes to be: the ``Spawner`` seam and the real spawner.

Design notes
------------
The supervisor owns a child's life (waiting for ``Ready``, stopping it,
reaping it); a spawner only makes one, in two steps. ``prepare`` opens the
child's IPC pipes and hands the parent their ends at once, so the supervisor
can speak to the child (and send it a stop message) from the moment it
exists. ``PreparedChild.run`` then starts the child and follows the contract
of ``trio.run_process``: it reports the running child through
``task_status``, returns once the child has exited, and when cancelled calls
``deliver_cancel(process)`` and still waits for the exit.

``ProcessSpawner`` is the real one: ``python -m engine.child`` in a process
of its own, its pipes passed with ``pass_fds``. Tests pass a spawner that
runs the child program in-process (``engine.testing.fake_child``), so no
process and no wall clock is involved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Protocol

import trio

__all__ = ["ChildProcess", "PreparedChild", "ProcessSpawner", "Spawner"]


class ChildProcess(Protocol):
    """What the supervisor needs of a running child (``trio.Process`` is one)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None:
        """The exit code once the child exited (negative: killed by a signal)."""
        ...

    @property
    def stdout(self) -> trio.abc.ReceiveStream | None:
        """What the child's handlers print; relayed to the engine's log."""
        ...

    @property
    def stderr(self) -> trio.abc.ReceiveStream | None: ...

    def kill(self) -> None:
        """End the child now (SIGKILL); its ``run`` then returns."""
        ...


DeliverCancel = Callable[[ChildProcess], Awaitable[object]]


class PreparedChild(Protocol):
    """One child whose pipes are open, not started yet."""

    @property
    def to_child(self) -> trio.abc.SendStream:
        """The parent's end of the child's inbound IPC pipe (the caller owns it)."""
        ...

    @property
    def from_child(self) -> trio.abc.ReceiveStream:
        """The parent's end of the child's outbound IPC pipe (the caller owns it)."""
        ...

    async def run(
        self, deliver_cancel: DeliverCancel, *, task_status: trio.TaskStatus[ChildProcess]
    ) -> None:
        """Start the child, report it through ``task_status``, return once it exited.

        Call it once, right after ``prepare``.

        Cancellation: runs ``deliver_cancel(process)`` (shielded) and still
        waits for the child to exit, then re-raises.

        Raises:
            OSError: the child could not be started.
        """
        ...


class Spawner(Protocol):
    """Makes children for the supervisor."""

    def prepare(self) -> PreparedChild:
        """A new child with its IPC pipes open; ``run`` starts it.

        Raises:
            OSError: the pipes could not be opened.
        """
        ...


class ProcessSpawner:
    """Children as processes running ``python -m engine.child``.

    Args:
        job_modules: modules each child imports to register job types.
        env: the children's environment (None: the engine's own, whole);
            the engine passes its own without its secrets
            (``engine.config.child_env``).
    """

    def __init__(self, job_modules: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._job_modules = tuple(job_modules)
        self._env = None if env is None else dict(env)

    def prepare(self) -> _ProcessChild:
        """A child process to be, with its pipes open."""
        return _ProcessChild(self._job_modules, self._env)


class _ProcessChild:
    """The pipes of one child process, then the process itself."""

    def __init__(self, job_modules: tuple[str, ...], env: dict[str, str] | None) -> None:
        self._job_modules = job_modules
        self._env = env
        from_child, self._child_out = os.pipe()
        self._child_in, to_child = os.pipe()
        self.to_child = trio.lowlevel.FdStream(to_child)
        self.from_child = trio.lowlevel.FdStream(from_child)

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "engine.child",
            "--ipc-in",
            str(self._child_in),
            "--ipc-out",
            str(self._child_out),
            "--parent-pid",
            str(os.getpid()),
            "--jobs",
            ",".join(self._job_modules),
        ]

    async def run(
        self, deliver_cancel: DeliverCancel, *, task_status: trio.TaskStatus[ChildProcess]
    ) -> None:
        """See ``PreparedChild.run``."""
        async with trio.open_nursery() as nursery:
            try:
                process: trio.Process = await nursery.start(
                    partial(
                        trio.run_process,
                        self._command(),
                        pass_fds=(self._child_in, self._child_out),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        check=False,
                        env=self._env,
                        deliver_cancel=deliver_cancel,
                    )
                )
            finally:
                # The child has its copies now: the parent's would keep the
                # pipes open after the child's death and hide its EOF.
                os.close(self._child_in)
                os.close(self._child_out)
            task_status.started(process)
