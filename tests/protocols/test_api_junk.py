"""HTTP bodies against junk: whatever arrives, decoding raises only
``InvalidBody``; encoding refuses what JSON cannot carry; integers of any
size go through exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import api, jsontext
from protocols.errors import InvalidBody, LocalProtocolError
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
