"""The client commands of ``batchyard``.

Argument parsing and the one-line errors run in-process with click's
``CliRunner``; everything that talks to a server runs ``python -m engine``
as a real subprocess against a real engine server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio
from click.testing import CliRunner

from engine.cli.main import main
from engine.client.http import BatchyardClient
from engine.client.watch import open_watch
from engine.testing import open_test_server
from protocols import api

#: Runs until cancelled or shut down, in any test's time.
LONG_JOB = api.JobSpec(payload={"seconds": 30})
FAIL_JOB = api.JobSpec(payload={"message": "no"})
CRASH_JOB = api.JobSpec(payload={"exitCode": 3})


@attrs.frozen(kw_only=True)
class Ran:
    """What one run of the command did."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def _env(url: str, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
    env |= {"BATCHYARD_URL": url, "PYTHONUNBUFFERED": "1", "COLUMNS": "160", "NO_COLOR": "1"}
    if token is not None:
        env["BATCHYARD_TOKEN"] = token
    return env


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


async def batchyard(url: str, *args: str, token: str | None = None) -> Ran:
    """Run ``python -m engine ARGS`` against the server at ``url``."""
    done = await trio.run_process(
        _command(args),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=_env(url, token),
    )
    return Ran(code=done.returncode, out=done.stdout.decode(), err=done.stderr.decode())


class Running:
    """A command running in the background; ``wait_for`` reads its stdout as it comes."""

    def __init__(self, process: trio.Process) -> None:
        self._process = process
        self._out = b""

    async def wait_for(self, text: str) -> None:
        assert self._process.stdout is not None
        while text.encode() not in self._out:
            chunk = await self._process.stdout.receive_some()
            assert chunk, f"stdout ended before {text!r}: {self._out!r}"
            self._out += chunk

    def interrupt(self) -> None:
        """Ctrl-C."""
        self._process.send_signal(signal.SIGINT)

    async def finish(self) -> Ran:
        assert self._process.stdout is not None and self._process.stderr is not None
        async for chunk in self._process.stdout:
            self._out += chunk
        err = b"".join([chunk async for chunk in self._process.stderr])
        code = await self._process.wait()
        return Ran(code=code, out=self._out.decode(), err=err.decode())


async def start_batchyard(nursery: trio.Nursery, url: str, *args: str) -> Running:
    process = await nursery.start(
        partial(
            trio.run_process,
            _command(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
            env=_env(url, None),
        )
    )
    return Running(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def document(text: str) -> Any:
    return orjson.loads(text)


# --- in-process: arguments and one-line errors --------------------------------------


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "--count", "3"], "Missing option '--type'"),
        (["submit", "--type", "echo"], "give exactly one of --count N and --file JOBS.jsonl"),
        (["submit", "--type", "echo", "--count", "0"], "0 is not in the range x>=1"),
        (["submit", "--type", "echo", "--count", "2", "--payload", "{nope"], "--payload is not"),
        (["submit", "--type", "echo", "--file", "/nonexistent/jobs.jsonl"], "No such file"),
        (["start"], "Missing argument 'BATCH'"),
        (["status", "--bogus"], "No such option '--bogus'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("batchyard: ") and message in line


def test_a_bad_jobs_file_line_is_named_by_its_number(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"payload": 1}\n\n{"payload": 2, "priority": "high"}\n')
    result = invoke("submit", "--type", "echo", "--file", str(jobs))
    assert result.exit_code == 2
    assert result.stderr == (
        f"batchyard: {jobs}, line 3: expected an integer, got a string @ $.priority\n"
    )


def test_payload_goes_with_count_only(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"payload": 1}\n')
    result = invoke("submit", "--type", "echo", "--file", str(jobs), "--payload", "{}")
    assert result.exit_code == 2 and "--payload goes with --count" in result.stderr


def test_an_invalid_url_is_one_line() -> None:
    result = invoke("status", "--url", "ftp://example.org")
    assert result.exit_code == 1
    assert result.stderr == (
        "batchyard: invalid server URL 'ftp://example.org': expected http://HOST[:PORT]\n"
    )


def test_url_and_token_come_from_the_environment() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke("pause", env={"BATCHYARD_URL": url, "BATCHYARD_TOKEN": "t"})
    assert result.exit_code == 1
    assert result.stderr == f"batchyard: cannot reach {url} (connection refused)\n"


# --- a real server, the command as a subprocess ---------------------------------------


async def test_an_unreachable_server_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with trio.fail_after(30):
        status, watch = await batchyard(url, "status"), await batchyard(url, "watch", "b")
    for ran in (status, watch):
        assert ran.code == 1 and ran.out == ""
        assert ran.err_lines == [f"batchyard: cannot reach {url} (connection refused)"]


async def test_submit_count_then_status(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_test_server(tmp_path) as (_, url):
            submitted = await batchyard(
                url, "submit", "--type", "echo", "--batch", "c", "--count", "4",
                "--payload", '{"x": 1}', "--json",
            )  # fmt: skip
            one = await batchyard(url, "status", "c", "--json")
            every = await batchyard(url, "status", "--json")
            table = await batchyard(url, "status")
            again = await batchyard(
                url, "submit", "--type", "echo", "--batch", "c", "--count", "1"
            )
    assert submitted.code == 0 and document(submitted.out) == {
        "batchId": "c",
        "enqueued": 4,
        "duplicates": 0,
    }
    assert document(one.out)["counts"] == {"pending": 4, "active": 0, "completed": 0, "failed": 0}
    listed = document(every.out)
    assert listed["engine"]["paused"] is False and listed["engine"]["maxBatches"] == 1
    assert [b["batchId"] for b in listed["batches"]] == ["c"]
    here = listed["engine"]["engineId"]
    assert f"engine {here}: 0 of 1 batches running (none)" in table.out
    assert "│ c " in table.out
    assert again.code == 1 and again.err_lines == [
        "batchyard: 409 batch-exists: batch 'c' already exists"
    ]


async def test_submit_a_file_and_start_it(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"payload": n, "key": f"k{n % 5}"} for n in range(8)]
    lines.append({"payload": {"message": "no"}, "type": "fail"})
    jobs.write_text("\n".join(orjson.dumps(line).decode() for line in lines) + "\n\n")
    with trio.fail_after(60):
        async with open_test_server(tmp_path) as (_, url):
            ran = await batchyard(
                url, "submit", "--type", "echo", "--batch", "f", "--file", str(jobs),
                "--start", "--json",
            )  # fmt: skip
            watched = await batchyard(url, "watch", "f")
            async with BatchyardClient(url) as client:
                view = await client.get_batch("f")
    assert ran.code == 0, ran.err
    assert document(ran.out) == {
        "batchId": "f",
        "enqueued": 6,
        "duplicates": 3,
        "start": {"status": "started", "retryAfter": None},
    }
    assert watched.code == 0, watched.err
    assert "f" in watched.out
    assert (view.counts.completed, view.counts.failed) == (5, 1)


async def test_watch_until_done(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path) as (_, url),
            BatchyardClient(url) as client,
            trio.open_nursery() as nursery,
        ):
            specs = [api.JobSpec(payload={"seconds": 0.02}) for _ in range(10)]
            await client.create_batch("sleep", specs, batch_id="w")
            watch = await start_batchyard(nursery, url, "watch", "w")
            await watch.wait_for("waiting for it to start")
            await client.start("w")
            ran = await watch.finish()
    assert ran.code == 0, ran.err
    assert "batch w done: 10 completed, 0 failed in " in ran.out
    assert ran.err == ""


async def test_watch_exits_1_when_the_run_ends_in_error(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path, batch_retries=0) as (_, url),
            trio.open_nursery() as nursery,
            BatchyardClient(url) as client,
        ):
            await client.create_batch(
                "crash", [api.JobSpec(payload={"exitCode": 3})], batch_id="e"
            )
            watch = await start_batchyard(nursery, url, "watch", "e")
            await watch.wait_for("waiting for it to start")
            await client.start("e")
            ran = await watch.finish()
    assert ran.code == 1, ran.err
    assert "batch e error: " in ran.out


async def test_start_retry_cancel(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path, max_active_batches=1) as (_, url),
            BatchyardClient(url) as client,
        ):
            await client.create_batch("fail", [FAIL_JOB] * 3, batch_id="x")
            await client.create_batch("sleep", [LONG_JOB], batch_id="long")
            async with open_watch(client, ["x"]) as stream:
                started = await batchyard(url, "start", "x")
                assert [e.event async for e in stream][-1] == "done"
            retried = await batchyard(url, "retry", "x")
            long = await batchyard(url, "start", "long", "--json")
            blocked = await batchyard(url, "start", "x")
            cancelled = await batchyard(url, "cancel", "long")
            not_running = await batchyard(url, "cancel", "long")
    assert started.code == 0 and started.out == "batch x started\n"
    assert retried.code == 0 and retried.out == "batch x: 3 failed jobs back to pending\n"
    assert long.code == 0
    assert document(long.out) == {"status": "started", "batchId": "long", "retryAfter": None}
    assert blocked.code == 1 and blocked.out == ""
    [line] = blocked.err_lines
    assert line.startswith("batchyard: batch x not started: capacity reached; retry in ")
    assert cancelled.code == 0 and cancelled.out.startswith("batch long: cancelled")
    assert not_running.code == 1
    [line] = not_running.err_lines
    assert line == "batchyard: 409 batch-not-running: batch 'long' is not running"


async def test_pause_and_resume(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_test_server(tmp_path) as (_, url), BatchyardClient(url) as client:
            paused = await batchyard(url, "pause")
            while_paused = await client.status()
            resumed = await batchyard(url, "resume")
            after = await client.status()
    assert paused.code == 0 and paused.out.startswith("paused")
    assert resumed.code == 0 and resumed.out.startswith("resumed")
    assert while_paused.paused and not after.paused


async def test_watch_every_batch_until_interrupted(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path) as (_, url),
            BatchyardClient(url) as client,
            trio.open_nursery() as nursery,
        ):
            await client.create_batch(
                "echo", [api.JobSpec(payload=n) for n in range(3)], batch_id="a"
            )
            watch = await start_batchyard(nursery, url, "watch")
            await watch.wait_for("watching every batch")
            await client.start("a")
            await watch.wait_for("batch a done: 3 completed, 0 failed")
            watch.interrupt()
            ran = await watch.finish()
    assert ran.code == 130
    assert ran.err_lines == ["batchyard: interrupted"]


async def test_a_wrong_token_is_one_line(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_test_server(tmp_path, token="s3cret") as (_, url):
            missing = await batchyard(url, "status")
            wrong = await batchyard(url, "watch", "b", "--token", "guess")
            right = await batchyard(url, "status", "--json", token="s3cret")
    hint = "(pass --token or set BATCHYARD_TOKEN)"
    assert missing.code == 1 and missing.out == ""
    [line] = missing.err_lines
    assert line.startswith("batchyard: 401 ") and line.endswith(hint)
    assert wrong.code == 1
    [line] = wrong.err_lines
    assert "unauthorized" in line and line.endswith(hint)
    assert right.code == 0 and document(right.out)["batches"] == []
