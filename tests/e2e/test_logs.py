"""Operational logs end to end: a ``batchyard worker`` with
``BATCHYARD_LOG_FORMAT=json`` writes nothing but JSON objects to stderr,
its children's relayed lines included (with their ``batchId``), and at
``BATCHYARD_LOG_LEVEL=debug`` a line per job start and end (with its
``jobId``), besides the status line every ``STATUS_LOG_SECONDS``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import trio

from engine.store import NewJob, open_store
from tests.e2e.processes import engine_environment, run_engine

_SHOUT = """
import sys
from engine import job_type

@job_type("shout")
def shout(payload, ctx):
    print("shouting", payload["word"], file=sys.stderr, flush=True)
    if payload["word"] == "boom":
        raise RuntimeError("it went boom")
    return payload
"""


async def test_a_json_worker_writes_only_json_lines(tmp_path: Path) -> None:
    (tmp_path / "shout.py").write_text(_SHOUT)
    store_url = f"sqlite:///{tmp_path / 'batchyard.db'}"
    env = {
        "BATCHYARD_LOG_FORMAT": "json",
        "BATCHYARD_LOG_LEVEL": "debug",
        "STATUS_LOG_SECONDS": "0.5",
        "PYTHONPATH": str(tmp_path),
    }
    with trio.fail_after(60):
        async with (
            run_engine("worker", store_url, "--jobs", "shout", **env) as worker,
            open_store(store_url) as store,
        ):
            await store.create_batch("loud", "shout")
            words = [NewJob(type="shout", payload={"word": w}) for w in ("hey", "boom")]
            added = await store.add_jobs("loud", words)
            while True:
                counts = await store.counts("loud")
                if counts.completed + counts.failed == 2:
                    break
                await trio.sleep(0.2)
            await trio.sleep(1.2)  # a status line after the run
            assert await worker.stop() == 0
    lines = [json.loads(line) for line in worker.lines]  # every line is one object
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None
    relayed = [line for line in lines if line["message"] == "[batch loud] shouting hey"]
    assert [(r["logger"], r["batchId"]) for r in relayed] == [("batchyard.child", "loud")]
    hey, boom = added.job_ids
    lifecycle = {
        (line["jobId"], line["message"].split(") ", 1)[1].split(" in ")[0])
        for line in lines
        if line["logger"] == "batchyard.jobs" and line["batchId"] == "loud"
    }
    assert lifecycle == {
        (hey, "active, attempt 1"),
        (hey, "completed"),
        (boom, "active, attempt 1"),
        (boom, "failed"),
    }
    [failed] = [
        line for line in lines if line.get("jobId") == boom and "failed" in line["message"]
    ]
    assert failed["level"] == "DEBUG" and "it went boom" in failed["message"]
    status = [line["message"] for line in lines if line["logger"] == "batchyard.status"]
    assert "status: running 0 of 1; shout: pending 0, active 0, completed 1, failed 1" in status


async def test_a_json_worker_that_cannot_start_says_why_in_one_json_line(
    tmp_path: Path,
) -> None:
    config = tmp_path / "batchyard.toml"
    config.write_text('[schedules.nightly]\ncron = "30 2 * * *"\ntype = "embed"\n')
    argv = [sys.executable, "-m", "engine", "worker", "--config", str(config)]
    env = engine_environment(f"sqlite:///{tmp_path / 'batchyard.db'}", BATCHYARD_LOG_FORMAT="json")
    with trio.fail_after(30):
        done = await trio.run_process(argv, env=env, capture_stderr=True, check=False)
    assert done.returncode == 1
    [line] = [json.loads(text) for text in done.stderr.decode().splitlines()]
    assert (line["level"], line["logger"]) == ("ERROR", "batchyard.cli")
    assert line["message"].startswith(
        "batchyard worker: [schedules.nightly] type='embed' is not a registered job type"
    )


_WHISPER = """
from engine import job_type

@job_type("whisper")
def whisper(payload, ctx):
    print("whispering", payload["word"])  # stdout is a pipe: block-buffered, not flushed
    return payload
"""


async def test_what_the_last_job_printed_unflushed_is_relayed_when_its_child_exits(
    tmp_path: Path,
) -> None:
    (tmp_path / "whisper.py").write_text(_WHISPER)
    store_url = f"sqlite:///{tmp_path / 'batchyard.db'}"
    # An empty PYTHONUNBUFFERED is unset: the child's stdout stays buffered.
    env = {"BATCHYARD_LOG_FORMAT": "json", "PYTHONPATH": str(tmp_path), "PYTHONUNBUFFERED": ""}
    with trio.fail_after(60):
        async with (
            run_engine("worker", store_url, "--jobs", "whisper", **env) as worker,
            open_store(store_url) as store,
        ):
            await store.create_batch("quiet", "whisper")
            await store.add_jobs("quiet", [NewJob(type="whisper", payload={"word": "psst"})])
            while True:
                if (await store.counts("quiet")).completed == 1:
                    break
                await trio.sleep(0.2)
            await trio.sleep(1.0)  # the batch's child has exited by now
            assert await worker.stop() == 0
    messages = [json.loads(line)["message"] for line in worker.lines]
    assert "[batch quiet] whispering psst" in messages
