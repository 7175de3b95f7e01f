"""HTTP bodies: round trips and the contract's shapes (strict decoding is in
``test_api_decoding``, junk in ``test_api_junk``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given

from protocols import api, jsontext
from tests.protocols.strategies import BODIES, SETTINGS

# --- round trips ------------------------------------------------------------------


@SETTINGS
@given(BODIES)
def test_every_body_round_trips(body: Any) -> None:
    assert api.decode_body(api.encode_body(body), type(body)) == body


@SETTINGS
@given(BODIES)
def test_wire_keys_are_camel_case(body: Any) -> None:
    def keys(value: Any) -> list[str]:
        if isinstance(value, list):
            return [key for item in value for key in keys(item)]
        if isinstance(value, dict):
            return [*value, *(key for item in value.values() for key in keys(item))]
        return []

    raw = jsontext.load_any(api.encode_body(body))
    # Payloads, results and options are the client's own JSON, keys and all.
    for opaque in ("payload", "result", "options", "services"):
        _drop(raw, opaque)
    assert all("_" not in key for key in keys(raw))


def _drop(value: Any, key: str) -> None:
    if isinstance(value, list):
        for item in value:
            _drop(item, key)
    elif isinstance(value, dict):
        value.pop(key, None)
        for item in value.values():
            _drop(item, key)


# --- the contract's shapes ----------------------------------------------------------


def test_create_batch_of_the_contract() -> None:
    raw = {
        "batchId": "reports-2024.06:a_b-c",
        "type": "echo",
        "jobs": [
            {"payload": {"n": 1}, "key": "k1", "priority": 5, "delaySeconds": 1.5},
            {"payload": [1, 2], "type": "noop"},
            {},
        ],
        "options": {"anything": ["goes"]},
    }
    body = api.decode_body(jsontext.dumps(raw), api.CreateBatch)
    assert body == api.CreateBatch(
        batch_id="reports-2024.06:a_b-c",
        type="echo",
        jobs=(
            api.JobSpec(payload={"n": 1}, key="k1", priority=5, delay_seconds=1.5),
            api.JobSpec(payload=[1, 2], type="noop"),
            api.JobSpec(),
        ),
        options={"anything": ["goes"]},
    )


def test_create_batch_defaults() -> None:
    body = api.decode_body(b'{"type": "noop", "jobs": []}', api.CreateBatch)
    assert body == api.CreateBatch(type="noop", jobs=())
    assert body.batch_id is None
    assert body.options == {}


def test_empty_job_lists_are_allowed() -> None:
    assert api.decode_body(b'{"jobs": []}', api.AddJobs) == api.AddJobs(jobs=())


def test_job_spec_defaults() -> None:
    assert api.decode_body(b"{}", api.JobSpec) == api.JobSpec(
        payload=None, type=None, key=None, priority=0, delay_seconds=0.0
    )


def test_an_integer_delay_is_a_float() -> None:
    spec = api.decode_body(b'{"delaySeconds": 2}', api.JobSpec)
    assert spec.delay_seconds == 2.0
    assert isinstance(spec.delay_seconds, float)


def test_batch_view_of_the_contract() -> None:
    view = api.BatchView(
        batch_id="b1",
        type="cpu",
        running=True,
        engine_id="engine-1",
        counts=api.Counts(pending=3, active=2, completed=4, failed=1),
        created_at=datetime(2024, 6, 1, 12, 30, tzinfo=UTC),
        options={"after": ["b0"]},
        eta_seconds=12.5,
    )
    assert jsontext.load_any(api.encode_body(view)) == {
        "batchId": "b1",
        "type": "cpu",
        "running": True,
        "engineId": "engine-1",
        "counts": {"pending": 3, "active": 2, "completed": 4, "failed": 1},
        "child": None,
        "createdAt": "2024-06-01T12:30:00+00:00",
        "options": {"after": ["b0"]},
        "etaSeconds": 12.5,
    }


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        (
            api.EnqueueResult(batch_id="b", enqueued=2, duplicates=1),
            {"batchId": "b", "enqueued": 2, "duplicates": 1},
        ),
        (
            api.ProcessResult(status="capacity-reached", batch_id="b"),
            {"status": "capacity-reached", "batchId": "b"},
        ),
        (
            api.StatusView(
                running_batches=("a",),
                active_batches=1,
                max_batches=2,
                is_shutting_down=False,
                paused=True,
                engine_id="engine-1",
                engines=(
                    api.EngineView(
                        engine_id="engine-1",
                        host="h",
                        pid=7,
                        running_batches=("a",),
                        max_batches=2,
                        last_seen=datetime(2024, 6, 1, 12, 30, tzinfo=UTC),
                    ),
                ),
            ),
            {
                "runningBatches": ["a"],
                "activeBatches": 1,
                "maxBatches": 2,
                "isShuttingDown": False,
                "paused": True,
                "engineId": "engine-1",
                "engines": [
                    {
                        "engineId": "engine-1",
                        "host": "h",
                        "pid": 7,
                        "runningBatches": ["a"],
                        "maxBatches": 2,
                        "lastSeen": "2024-06-01T12:30:00+00:00",
                    }
                ],
            },
        ),
        (
            api.HealthView(
                status="ok",
                services={"store": "connected"},
                metrics=api.HealthMetrics(queue_length=5, active_workers=2),
            ),
            {
                "status": "ok",
                "services": {"store": "connected"},
                "metrics": {"queueLength": 5, "activeWorkers": 2},
            },
        ),
        (api.JobList(jobs=(), next_cursor=None), {"jobs": [], "nextCursor": None}),
        (api.Requeued(requeued=4), {"requeued": 4}),
        (
            api.ErrorBody(error=api.ErrorDetail(code="not-found", message="no batch b")),
            {"error": {"code": "not-found", "message": "no batch b"}},
        ),
    ],
)
def test_response_shapes_of_the_contract(body: Any, wire: dict[str, Any]) -> None:
    assert jsontext.load_any(api.encode_body(body)) == wire
    assert api.decode_body(jsontext.dumps(wire), type(body)) == body


def test_job_view_of_the_contract() -> None:
    wire = {
        "jobId": "j1",
        "batchId": "b1",
        "type": "echo",
        "state": "completed",
        "payload": {"x": 1},
        "attempts": 1,
        "key": None,
        "priority": 0,
        "cost": 2.5,
        "progress": 40.0,
        "result": {"x": 1},
        "error": None,
        "createdAt": "2024-06-01T12:30:00+00:00",
        "startedAt": "2024-06-01T12:30:01.500000+00:00",
        "finishedAt": None,
    }
    encoded = api.encode_body(api.decode_body(jsontext.dumps(wire), api.JobView))
    assert jsontext.load_any(encoded) == wire
    assert list(jsontext.load_any(encoded)) == list(wire)  # the contract's order
