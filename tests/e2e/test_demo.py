"""``batchyard demo`` runs end to end as a user would run it, and with
``--serve`` leaves its dashboard up until Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import trio


def _row(table: str, name: str) -> str:
    match = re.search(rf"{name}\s*│\s*(\S+)", table)
    assert match, f"no {name!r} row in:\n{table}"
    return match.group(1)


async def test_demo_runs_both_batches_and_prints_a_summary() -> None:
    with trio.fail_after(120):
        result = await trio.run_process(
            [sys.executable, "-m", "engine", "demo"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, "COLUMNS": "100"},
        )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "demo-1" in out and "demo-2" in out
    assert _row(out, "completed") == "400"
    assert _row(out, "failed") == "0"
    assert float(_row(out, "throughput")) > 0


async def test_demo_tells_its_four_stories_in_its_summary() -> None:
    with trio.fail_after(120):
        result = await trio.run_process(
            [sys.executable, "-m", "engine", "demo"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, "COLUMNS": "140"},
        )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "refused: capacity reached (HTTP 429)" in _line(out, "third start")
    limited = re.search(
        r"30 of 30 jobs at 10/s in [\d.]+ s, its ETA counted down from ([\d.]+) s", out
    )
    assert limited, out
    assert float(limited.group(1)) > 0
    assert "crashed 1x and was restarted; the job completed on attempt 2" in _line(out, "crash")


def _line(table: str, name: str) -> str:
    match = re.search(rf"{name}\s*│([^│]*)│", table)
    assert match, f"no {name!r} row in:\n{table}"
    return match.group(1)


async def test_demo_serve_leaves_the_dashboard_up_until_ctrl_c() -> None:
    argv = [sys.executable, "-m", "engine", "demo", "--serve", "--port", "0"]
    env = {**os.environ, "COLUMNS": "140", "PYTHONUNBUFFERED": "1"}
    process = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    out = b""
    try:
        with trio.fail_after(120):
            assert process.stdout is not None
            while b"stays up at" not in out:
                chunk = await process.stdout.receive_some()
                assert chunk, out.decode()
                out += chunk
        url = re.search(rb"dashboard: (http://\S+?)/ ", out)
        assert url, out.decode()
        async with httpx.AsyncClient(base_url=url.group(1).decode()) as client:
            page = await client.get("/")
            batches = (await client.get("/api/batches")).json()["batches"]
        assert page.status_code == 200 and "app.js" in page.text
        assert {b["batchId"] for b in batches} == {
            "demo-1",
            "demo-2",
            "demo-limited",
            "demo-crash",
        }
        assert all(b["counts"]["completed"] == sum(b["counts"].values()) for b in batches)
        process.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            code = await process.wait()
        assert code == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
