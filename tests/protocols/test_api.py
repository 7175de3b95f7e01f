"""HTTP bodies: round trips, the contract's shapes, strict decoding with field paths."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import api, jsontext
from protocols.errors import InvalidBody, LocalProtocolError, RemoteProtocolError
from protocols.events import Event
from tests.protocols.strategies import BODIES, JSON, SETTINGS, TEXT

BODY_CLASSES = [
    api.CreateBatch,
    api.AddJobs,
    api.JobSpec,
    api.EnqueueResult,
    api.Counts,
    api.BatchView,
    api.BatchList,
    api.JobView,
    api.JobList,
    api.ProcessResult,
    api.StatusView,
    api.HealthMetrics,
    api.HealthView,
    api.Requeued,
    api.ErrorDetail,
    api.ErrorBody,
]

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


# --- strict decoding ----------------------------------------------------------------


def _create(**changes: Any) -> bytes:
    return jsontext.dumps({"type": "t", "jobs": [], **changes})


def _job(**fields: Any) -> bytes:
    return _create(jobs=[fields])


_COUNTS = {"pending": 0, "active": 0, "completed": 0, "failed": 0}
_VIEW = {
    "batchId": "b",
    "type": "t",
    "running": True,
    "engineId": None,
    "counts": _COUNTS,
    "createdAt": "2024-01-01T00:00:00Z",
    "options": {},
}


def _view(**changes: Any) -> bytes:
    return jsontext.dumps({**_VIEW, **changes})


STRICT_CASES = [
    (api.CreateBatch, b"", "body is not JSON"),
    (api.CreateBatch, b"{", "body is not JSON"),
    (api.CreateBatch, b"[]", r"expected an object, got an array @ \$$"),
    (api.CreateBatch, b"null", r"expected an object, got null @ \$$"),
    (api.CreateBatch, b'{"jobs": []}', r"required field missing @ \$\.type"),
    (api.CreateBatch, b'{"type": "t"}', r"required field missing @ \$\.jobs"),
    (api.CreateBatch, _create(type=""), r"type must not be empty @ \$\.type"),
    (
        api.CreateBatch,
        _create(options={"autoStart": 1}),
        r"autoStart must be a boolean, got 1 @ \$\.options",
    ),
    (
        api.CreateBatch,
        _create(options={"after": "b"}),
        r"after must be a list of at most 1000 batch ids @ \$\.options",
    ),
    (
        api.CreateBatch,
        _create(options={"after": ["ok", "not ok"]}),
        r"after must list batch ids .*'not ok' @ \$\.options",
    ),
    (
        api.CreateBatch,
        _create(options={"autoStart": None}),
        r"autoStart must be a boolean, got None @ \$\.options",
    ),
    (api.CreateBatch, _create(type=1), r"expected a string, got an integer @ \$\.type"),
    (api.CreateBatch, _create(jobs={}), r"expected an array, got an object @ \$\.jobs"),
    (api.CreateBatch, _create(jobs=""), r"expected an array, got a string @ \$\.jobs"),
    (api.CreateBatch, _create(jobs=[1]), r"expected an object, got an integer @ \$\.jobs\[0\]"),
    (api.CreateBatch, _create(extra=1), r"unknown fields: extra @ \$$"),
    (api.CreateBatch, _create(batch_id="b"), r"unknown fields: batch_id @ \$$"),
    (api.CreateBatch, _create(batchId="a b"), r"batchId must be .* @ \$\.batchId"),
    (api.CreateBatch, _create(batchId=""), r"batchId must be .* @ \$\.batchId"),
    (api.CreateBatch, _create(options=[]), r"expected a mapping @ \$\.options"),
    (
        api.CreateBatch,
        _create(jobs=[{}, {"priority": "1"}]),
        r"expected an integer, got a string @ \$\.jobs\[1\]\.priority",
    ),
    (api.CreateBatch, _job(priority=1.5), r"got a float @ \$\.jobs\[0\]\.priority"),
    (api.CreateBatch, _job(priority=True), r"got a boolean @ \$\.jobs\[0\]\.priority"),
    (
        api.CreateBatch,
        _job(priority=api.MAX_PRIORITY + 1),
        r"priority must be within .* @ \$\.jobs\[0\]\.priority",
    ),
    (
        api.CreateBatch,
        _job(delaySeconds=-0.5),
        r"delaySeconds must be a finite number >= 0, got -0.5 @ \$\.jobs\[0\]\.delaySeconds",
    ),
    (
        api.CreateBatch,
        _job(delaySeconds="1"),
        r"expected a number, got a string @ \$\.jobs\[0\]\.delaySeconds",
    ),
    (
        api.CreateBatch,
        _job(cost=0),
        r"cost must be a finite number > 0, got 0.0 @ \$\.jobs\[0\]\.cost",
    ),
    (
        api.CreateBatch,
        _job(cost="1"),
        r"expected a number, got a string @ \$\.jobs\[0\]\.cost",
    ),
    (
        api.CreateBatch,
        _job(key=""),
        r"key must be 1 to 1024 characters, got 0 @ \$\.jobs\[0\]\.key",
    ),
    (api.CreateBatch, _job(type=""), r"type must not be empty @ \$\.jobs\[0\]\.type"),
    (api.CreateBatch, _job(delay=1), r"unknown fields: delay @ \$\.jobs\[0\]$"),
    (api.AddJobs, b'{"jobs": [], "type": "t"}', r"unknown fields: type @ \$$"),
    (
        api.ProcessResult,
        b'{"status": "running", "batchId": "b"}',
        r"expected one of .* got 'running' @ \$\.status",
    ),
    (
        api.HealthView,
        jsontext.dumps(
            {
                "status": "ok",
                "services": {"store": 1},
                "metrics": {"queueLength": 0, "activeWorkers": 0},
            }
        ),
        r"expected a string, got an integer @ \$\.services\['store'\]",
    ),
    (
        api.StatusView,
        jsontext.dumps(
            {
                "runningBatches": "a",
                "activeBatches": 1,
                "maxBatches": 1,
                "isShuttingDown": False,
                "paused": False,
                "engineId": "e",
                "engines": [],
            }
        ),
        r"expected an array, got a string @ \$\.runningBatches",
    ),
    (api.BatchView, _view(running=1), r"expected a boolean, got an integer @ \$\.running"),
    (
        api.BatchView,
        _view(createdAt="2024-01-01T00:00:00"),
        r"createdAt must carry a UTC offset, .* @ \$\.createdAt",
    ),
    (api.BatchView, _view(createdAt="yesterday"), r"@ \$\.createdAt"),
    (
        api.BatchView,
        _view(counts={"pending": 0, "active": 0, "completed": 0}),
        r"required field missing @ \$\.counts\.failed",
    ),
    (api.ErrorBody, b'{"error": "boom"}', r"expected an object, got a string @ \$\.error"),
]


@pytest.mark.parametrize(("cls", "raw", "says"), STRICT_CASES)
def test_decoding_is_strict_and_names_the_path(cls: type[Any], raw: bytes, says: str) -> None:
    with pytest.raises(InvalidBody, match=says) as refused:
        api.decode_body(raw, cls)
    assert all(" @ $" in line for line in refused.value.errors)


def test_every_fault_is_reported() -> None:
    raw = b'{"type": "t", "jobs": [{"priority": "x"}, {"key": 1}, {"delaySeconds": null}]}'
    with pytest.raises(InvalidBody) as refused:
        api.decode_body(raw, api.CreateBatch)
    assert [line.rsplit(" @ ", 1)[1] for line in refused.value.errors] == [
        "$.jobs[0].priority",
        "$.jobs[1].key",
        "$.jobs[2].delaySeconds",
    ]
    assert str(refused.value) == "; ".join(refused.value.errors)


def test_invalid_body_is_a_remote_protocol_error() -> None:
    assert issubclass(InvalidBody, RemoteProtocolError)
    error = InvalidBody("a @ $", "b @ $.x")
    assert error.errors == ("a @ $", "b @ $.x")
    assert str(error) == "a @ $; b @ $.x"


def test_a_str_body_is_accepted() -> None:
    assert api.decode_body('{"requeued": 3}', api.Requeued) == api.Requeued(requeued=3)


# --- validators, from Python ----------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"delay_seconds": math.inf},
        {"delay_seconds": math.nan},
        {"delay_seconds": -1},
        {"priority": api.MAX_PRIORITY + 1},
        {"priority": api.MIN_PRIORITY - 1},
        {"key": ""},
        {"key": "k" * (api.MAX_KEY_LENGTH + 1)},
        {"type": ""},
    ],
)
def test_job_spec_validators(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        api.JobSpec(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"priority": api.MAX_PRIORITY},
        {"priority": api.MIN_PRIORITY},
        {"key": "k" * api.MAX_KEY_LENGTH},
        {"delay_seconds": 0.0},
        {"delay_seconds": 1e300},
    ],
)
def test_job_spec_bounds_are_inclusive(fields: dict[str, Any]) -> None:
    api.JobSpec(**fields)


@pytest.mark.parametrize(
    ("batch_id", "valid"),
    [
        ("b", True),
        ("A-z_0.9:x", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("a b", False),
        ("a/b", False),
        ("é", False),
        ("a\n", False),
    ],
)
def test_batch_id_pattern(batch_id: str, valid: bool) -> None:
    assert (api.BATCH_ID_PATTERN.fullmatch(batch_id) is not None) is valid
    if valid:
        api.CreateBatch(jobs=(), type="t", batch_id=batch_id)
    else:
        with pytest.raises(ValueError, match="batchId"):
            api.CreateBatch(jobs=(), type="t", batch_id=batch_id)


def test_flow_options_are_kept_as_given() -> None:
    body = api.decode_body(
        _create(options={"after": ["a", "b"], "autoStart": True, "mine": 1}), api.CreateBatch
    )
    assert body.options == {"after": ["a", "b"], "autoStart": True, "mine": 1}


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="createdAt"):
        api.BatchView(
            batch_id="b",
            type="t",
            running=False,
            engine_id=None,
            counts=api.Counts(pending=0, active=0, completed=0, failed=0),
            created_at=datetime(2024, 1, 1),
            options={},
        )


# --- junk -----------------------------------------------------------------------------


@SETTINGS
@given(
    st.sampled_from(BODY_CLASSES),
    JSON | st.binary(max_size=100) | st.from_type(dict[str, int | float | str | None]),
)
def test_junk_raises_only_invalid_body(cls: type[Any], junk: Any) -> None:
    raw = junk if isinstance(junk, bytes) else _dumps_or_none(junk)
    if raw is None:
        return
    _decode_or_refuse(raw, cls)


@SETTINGS
@given(BODIES, st.data())
def test_near_misses_raise_only_invalid_body(body: Any, data: st.DataObject) -> None:
    raw = jsontext.load_any(api.encode_body(body))
    _mutate(raw, data)
    _decode_or_refuse(jsontext.dumps(raw), type(body))


def test_encode_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(LocalProtocolError):
        api.encode_body(api.JobSpec(payload=object()))
    with pytest.raises(LocalProtocolError):
        api.encode_body(api.JobSpec(payload={"n": [2**64, object()]}))


def test_integers_of_any_size_round_trip_exactly() -> None:
    payload = {"n": 2**70, "list": [-(2**64), 2**64 - 1, -(2**63), 1.5]}
    body = api.CreateBatch(type="echo", jobs=(api.JobSpec(payload=payload),))
    assert api.decode_body(api.encode_body(body), api.CreateBatch) == body
    # Text from anyone, not only what batchyard wrote, is read exactly.
    raw = b'{"type":"echo","jobs":[{"payload":[-9223372036854775809,123456789012345678901]}]}'
    (job,) = api.decode_body(raw, api.CreateBatch).jobs
    assert job.payload == [-(2**63) - 1, 123456789012345678901]


def test_a_number_field_refuses_an_integer_beyond_a_float() -> None:
    raw = b'{"payload":null,"cost":1' + b"0" * 400 + b"}"
    expected = r"expected a number, got an integer of 1329 bits @ \$\.cost"
    with pytest.raises(InvalidBody, match=expected):
        api.decode_body(raw, api.JobSpec)


def _decode_or_refuse(raw: bytes, cls: type[Any]) -> None:
    try:
        decoded = api.decode_body(raw, cls)
    except InvalidBody as refused:
        assert refused.errors
        return
    assert isinstance(decoded, cls)
    assert api.decode_body(api.encode_body(decoded), cls) == decoded


def _dumps_or_none(value: Any) -> bytes | None:
    try:
        return jsontext.dumps(value)
    except TypeError:
        return None


def _mutate(value: Any, data: st.DataObject) -> None:
    """Change one thing, somewhere in ``value``: replace, delete or add a key."""
    target: Any = data.draw(st.sampled_from(list(_containers(value))))
    if isinstance(target, list):
        if len(target) > 0 and data.draw(st.booleans()):
            target[data.draw(st.integers(0, len(target) - 1))] = data.draw(JSON)
        else:
            target.append(data.draw(JSON))
        return
    action = data.draw(st.sampled_from(["replace", "delete", "add"] if target else ["add"]))
    if action == "add":
        target[data.draw(TEXT)] = data.draw(JSON)
        return
    key = data.draw(st.sampled_from(sorted(target)))
    if action == "delete":
        del target[key]
    else:
        target[key] = data.draw(JSON)


def _containers(value: Any) -> Iterator[Any]:
    if isinstance(value, list | dict):
        yield value
        for item in value if isinstance(value, list) else value.values():
            yield from _containers(item)


def test_event_is_not_an_http_body() -> None:
    # Events are framed by ``protocols.events``; an HTTP layer that decodes
    # one as a body still gets the strict treatment, not a crash.
    with pytest.raises(InvalidBody):
        api.decode_body(b'{"event": "done", "seq": 0, "data": {}}', Event)
