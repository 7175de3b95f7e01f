"""``batchyard serve`` as a real process: start-up line, SIGTERM, a second
SIGTERM, a client that stopped reading, no orphans, runs resumed on restart;
refusals at start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from engine.config.settings import Settings
from engine.errors import ConfigError
from engine.server.serve import check_exposure
from engine.testing import settings_for_tests
from faults.engines import EngineProcess
from faults.waiting import poll_until
from protocols.events import Event
from protocols.frames import parse_ws_frame
from tests.e2e.helpers import create_batch, open_ws, read_ws


def _environment(tmp_path: Path, grace: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHYARD_", "EMBEDDING_"))}
    env |= {
        "BATCHYARD_STORE": f"sqlite:///{tmp_path / 'batchyard.db'}",
        "SHUTDOWN_GRACE_SECONDS": str(grace),
        "EMBEDDING_RATE_LIMIT": "0",
        "EMBEDDING_CONCURRENCY": "2",
    }
    return env


@asynccontextmanager
async def run_server(tmp_path: Path, *, grace: float) -> AsyncIterator[EngineProcess]:
    """``batchyard serve --port 0`` until the block ends (killed if still running)."""
    command = [sys.executable, "-m", "engine", "serve", "--port", "0", "--jobs", "engine.testing"]
    process = await trio.lowlevel.open_process(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=_environment(tmp_path, grace),
    )
    server = EngineProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.read_stderr)
            with trio.fail_after(20):
                await server.ready.wait()
            yield server
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


async def _read_until_closed(ws: WebSocketConnection, into: list[Event]) -> int:
    try:
        while True:
            into.append(parse_ws_frame(await ws.get_message()))
    except ConnectionClosed as exc:
        return int(exc.reason.code)


async def _start_sleepers(
    client: httpx.AsyncClient, ws: WebSocketConnection, events: list[Event]
) -> str:
    """Starts a batch of four long sleeps; returns once two of them are active."""
    batch_id = await create_batch(client, "sleep", [{"seconds": 60}] * 4)
    assert (await client.post(f"/api/jobs/process/all/{batch_id}")).status_code == 200
    while len([e for e in events if e.event == "job:progress"]) < 2:
        events.append(parse_ws_frame(await ws.get_message()))
    return batch_id


async def test_sigterm_drains_within_the_grace_and_leaves_nothing_behind(tmp_path: Path) -> None:
    grace = 2.0
    events: list[Event] = []
    with trio.fail_after(60):
        async with (
            run_server(tmp_path, grace=grace) as server,
            httpx.AsyncClient(base_url=server.url) as client,
            open_ws(server.url) as ws,
        ):
            batch_id = await _start_sleepers(client, ws, events)

            async def both_children() -> bool:  # the batch's child and its warm successor
                await trio.lowlevel.checkpoint()
                return len(_descendants(server.process.pid)) >= 2

            assert await poll_until(both_children, 10)
            children = _descendants(server.process.pid)
            server.process.send_signal(signal.SIGTERM)
            sent = trio.current_time()
            code = await _read_until_closed(ws, events)
            await server.process.wait()
            took = trio.current_time() - sent
        assert server.process.returncode == 0, server.lines
        assert took < grace + 1.0, took
        assert code == 1001
        assert events[-1].event == "done" and events[-1].data.reason == "shutdown"
        assert not [child for child in children if child.is_running()]

        async with run_server(tmp_path, grace=grace) as again:
            async with httpx.AsyncClient(base_url=again.url) as client:
                batch = (await client.get(f"/api/batches/{batch_id}")).json()
            again.process.send_signal(signal.SIGTERM)
            await again.process.wait()
    counts = batch["counts"]
    assert counts["completed"] == counts["failed"] == 0
    assert counts["pending"] + counts["active"] == 4
    assert batch["running"] is True  # resumed as soon as the engine started


async def test_a_second_sigterm_ends_the_grace_period(tmp_path: Path) -> None:
    grace = 30.0
    with trio.fail_after(60):
        async with (
            run_server(tmp_path, grace=grace) as server,
            httpx.AsyncClient(base_url=server.url) as client,
            open_ws(server.url) as ws,
        ):
            await _start_sleepers(client, ws, [])
            children = _descendants(server.process.pid)
            server.process.send_signal(signal.SIGTERM)
            await trio.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            sent = trio.current_time()
            await server.process.wait()
            took = trio.current_time() - sent
    assert server.process.returncode == 0, server.lines
    assert took < 3.0, took
    assert not [child for child in children if child.is_running()]
    assert any("second stop request" in line for line in server.lines)


@asynccontextmanager
async def _open_stalled_ws(base_url: str, query: str) -> AsyncIterator[None]:
    """A WebSocket client of ``/ws?query`` that never reads: its receive
    buffer is small, and trio-websocket stops reading the socket while one
    message waits for a ``get_message`` that never comes."""
    host, _, port = base_url.removeprefix("http://").rpartition(":")
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    async with trio.open_nursery() as nursery:
        await wrap_client_stream(nursery, stream, host, f"/ws?{query}", message_queue_size=0)
        try:
            yield
        finally:
            nursery.cancel_scope.cancel()
            await stream.aclose()


async def test_a_client_that_stops_reading_does_not_hold_serve_past_the_grace(
    tmp_path: Path,
) -> None:
    # Each failure event carries its 32 KiB message, so the run's events are
    # far more than the stalled client's receive buffer and the server's
    # largest send buffer (tcp_wmem's 4 MiB) hold: the server's write to it
    # blocks for good.
    grace = 2.0
    jobs = [{"message": "x" * 32_768}] * 200
    with trio.fail_after(90):
        async with (
            run_server(tmp_path, grace=grace) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            batch_id = await create_batch(client, "fail", jobs)
            query = f"batchId={batch_id}"
            async with open_ws(server.url, query) as reader, _open_stalled_ws(server.url, query):
                assert (await client.post(f"/api/jobs/process/all/{batch_id}")).status_code == 200
                await read_ws(reader)
                server.process.send_signal(signal.SIGTERM)
                sent = trio.current_time()
                await server.process.wait()
                took = trio.current_time() - sent
    assert server.process.returncode == 0, server.lines
    assert took < grace + 1.0, took
    assert any("shut down 1 connections" in line for line in server.lines), server.lines


async def test_a_failed_start_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    env = _environment(tmp_path, 1.0)
    with trio.fail_after(30):
        exposed = await trio.run_process(
            [sys.executable, "-m", "engine", "serve", "--host", "0.0.0.0"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        bad = await trio.run_process(
            [sys.executable, "-m", "engine", "serve", "--jobs", "no_such_module_here"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    for result in (exposed, bad):
        assert result.returncode != 0
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("batchyard serve: "), lines
    assert "--insecure-no-auth" in exposed.stderr.decode()


def test_only_loopback_is_served_without_a_token(tmp_path: Path, settings: Settings) -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_exposure(host, settings, insecure_no_auth=False)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ConfigError, match="without a token"):
            check_exposure(host, settings, insecure_no_auth=False)
        check_exposure(host, settings, insecure_no_auth=True)
        check_exposure(host, settings_for_tests(tmp_path, token="t"), insecure_no_auth=False)
