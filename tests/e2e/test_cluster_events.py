"""Events across engines: two servers on one Redis, a batch run on one of
them, its events seen on both, the same seqs everywhere."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import trio

from engine.testing import open_test_server
from protocols.events import Event, RunDone
from tests.e2e.helpers import create_batch, open_sse, open_ws, read_ws

JOBS = 20


def _check_one_run(events: list[Event]) -> None:
    """One run's events, each once, in seq order."""
    names = Counter(e.event for e in events)
    assert events[0].event == "processing:started" and names["processing:started"] == 1
    assert events[-1].event == "done" and names["done"] == 1
    terminal = [e for e in events if e.event == "job:progress" and e.data.finished]
    assert len({e.data.job_id for e in terminal}) == len(terminal) == JOBS
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))


async def test_a_client_on_one_engine_sees_a_run_on_another(
    tmp_path: Path, redis_url: str
) -> None:
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path / "a", store_url=redis_url) as (_, url_a),
            open_test_server(tmp_path / "b", store_url=redis_url) as (engine_b, url_b),
            httpx.AsyncClient(base_url=url_b) as client_b,
        ):
            batch_id = await create_batch(client_b, "echo", list(range(JOBS)))
            async with (
                open_ws(url_a, f"batchId={batch_id}") as ws_a,
                open_ws(url_b, f"batchId={batch_id}") as ws_b,
            ):
                response = await client_b.post(f"/api/jobs/process/all/{batch_id}")
                assert response.status_code == 200, response.text
                assert engine_b.is_running(batch_id)
                on_a = await read_ws(ws_a)
                on_b = await read_ws(ws_b)
            # Replayed from the log on the engine that did not run the batch.
            async with open_sse(url_a, f"batchId={batch_id}", {"Last-Event-ID": "0"}) as sse:
                replayed = await sse.read_until()
    _check_one_run(on_a)
    assert on_a[-1].data == RunDone(batch_id=batch_id, completed=JOBS, failed=0)
    assert on_a == on_b == replayed
