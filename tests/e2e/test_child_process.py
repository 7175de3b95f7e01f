"""The real ``python -m engine.child``, as a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import trio


async def test_the_child_program_exits_3_when_its_parent_is_not_the_given_pid() -> None:
    # Real clock: the subprocess runs in real time.
    ipc_in, to_child = os.pipe()
    from_child, ipc_out = os.pipe()
    command = [
        sys.executable,
        "-m",
        "engine.child",
        "--ipc-in",
        str(ipc_in),
        "--ipc-out",
        str(ipc_out),
        "--parent-pid",
        str(os.getppid()),
    ]
    try:
        with trio.fail_after(30):
            result = await trio.run_process(
                command,
                pass_fds=(ipc_in, ipc_out),
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    finally:
        for fd in (ipc_in, to_child, ipc_out):
            os.close(fd)
    assert result.returncode == 3, result.stderr.decode(errors="replace")
    # It stopped before serving: not even Ready was written.
    with os.fdopen(from_child, "rb") as pipe:
        assert pipe.read() == b""
