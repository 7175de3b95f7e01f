"""HTTP bodies decoded strictly, with the field path of each fault, and the
validators of the wire classes called from Python.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest

from protocols import api, jsontext
from protocols.errors import InvalidBody, RemoteProtocolError

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
