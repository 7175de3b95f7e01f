"""The real ``python -m engine.child``, as a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

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


async def test_the_child_program_ignores_sigint_and_ends_on_eof() -> None:
    # A terminal's Ctrl-C reaches the children too: they leave stopping to
    # the engine, without a traceback.
    ipc_in, to_child = os.pipe()
    from_child, ipc_out = os.pipe()
    command = [sys.executable, "-m", "engine.child", "--ipc-in", str(ipc_in)]
    command += ["--ipc-out", str(ipc_out), "--parent-pid", str(os.getpid())]
    process = await trio.lowlevel.open_process(
        command, pass_fds=(ipc_in, ipc_out), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    os.close(ipc_in)
    os.close(ipc_out)
    try:
        with trio.fail_after(30):
            async with trio.lowlevel.FdStream(from_child) as reader:
                assert b'"ready"' in await reader.receive_some()  # it serves
                process.send_signal(signal.SIGINT)
                await trio.sleep(0.5)
                assert process.returncode is None  # still there
                os.close(to_child)  # EOF before any batch: an orderly end
                to_child = -1
                assert await process.wait() == 0
    finally:
        if to_child != -1:
            os.close(to_child)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    stderr = await process.stderr.receive_some(65536) or b""
    assert b"KeyboardInterrupt" not in stderr, stderr.decode(errors="replace")


async def test_a_job_modules_buffered_log_records_are_written_when_the_child_exits(
    tmp_path: Path,
) -> None:
    # The child ends with ``os._exit``; logging is shut down first, so a
    # buffering handler of a job module still flushes its records.
    log_file = tmp_path / "jobs.log"
    (tmp_path / "buffered_logs.py").write_text(
        textwrap.dedent(
            f"""
            import logging
            import logging.handlers

            target = logging.FileHandler({str(log_file)!r})
            buffered = logging.handlers.MemoryHandler(
                capacity=1000, flushLevel=logging.CRITICAL + 1, target=target
            )
            logger = logging.getLogger("buffered_logs")
            logger.addHandler(buffered)
            logger.warning("loaded and buffered")
            """
        )
    )
    ipc_in, to_child = os.pipe()
    from_child, ipc_out = os.pipe()
    command = [sys.executable, "-m", "engine.child", "--ipc-in", str(ipc_in)]
    command += ["--ipc-out", str(ipc_out), "--parent-pid", str(os.getpid())]
    command += ["--jobs", "buffered_logs"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    process = await trio.lowlevel.open_process(
        command, pass_fds=(ipc_in, ipc_out), stdin=subprocess.DEVNULL, env=env
    )
    os.close(ipc_in)
    os.close(ipc_out)
    try:
        with trio.fail_after(30):
            async with trio.lowlevel.FdStream(from_child) as reader:
                assert b'"ready"' in await reader.receive_some()
                os.close(to_child)  # EOF before any batch: an orderly end
                to_child = -1
                assert await process.wait() == 0
    finally:
        if to_child != -1:
            os.close(to_child)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert log_file.read_text() == "loaded and buffered\n"
