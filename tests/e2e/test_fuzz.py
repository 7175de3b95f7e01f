"""Junk bodies against ``POST /api/batches``: never a 500, always the error
body, and the server stays healthy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.testing import open_test_server
from protocols import jsontext
from tests.protocols.strategies import JSON, TEXT

_FIELDS = st.sampled_from(["batchId", "type", "jobs", "options", "payload", "key", "priority"])
_NEAR_MISS_JOBS = st.lists(
    st.dictionaries(
        st.sampled_from(["payload", "type", "key", "priority", "delaySeconds", "extra"]),
        JSON | st.sampled_from(["noop", "echo", "", -1.5, 2**40]),
        max_size=4,
    ),
    max_size=3,
)
_NEAR_MISSES = st.fixed_dictionaries(
    {"type": st.sampled_from(["noop", "echo", "", "nope"]) | JSON, "jobs": _NEAR_MISS_JOBS | JSON},
    optional={"batchId": TEXT | JSON, "options": JSON, "extra": JSON},
)


def _encode(value: Any) -> bytes:
    return jsontext.dumps(value)


#: What a JSON encoder would not write (or orjson could not read exactly):
#: numbers beyond 64 bits, lone surrogates, NaN, duplicate keys, trailing garbage, deep nesting.
_ODD_TEXT = st.sampled_from(
    [
        b'{"type": "echo", "jobs": [{"payload": 123456789012345678901234567890}]}',
        b'{"type": "echo", "jobs": [{"priority": 1e400}]}',
        b'{"type": "echo", "jobs": [{"key": "\\ud800"}]}',
        b'{"type": "echo", "jobs": [{"delaySeconds": NaN}]}',
        b'{"type": "echo", "type": "noop", "jobs": []}',
        b'{"type": "echo", "jobs": []} trailing',
        b"[" * 2000 + b"]" * 2000,
        b"\xff\xfe{}",
    ]
)

#: Raw bytes, odd text, JSON of any shape, objects with the right keys and
#: wrong values, and near-valid batches (which may well be accepted).
JUNK = st.one_of(
    st.binary(max_size=64),
    _ODD_TEXT,
    JSON.map(_encode),
    st.dictionaries(_FIELDS, JSON, max_size=4).map(_encode),
    _NEAR_MISSES.map(_encode),
)


async def test_junk_bodies_never_answer_500(tmp_path: Path) -> None:
    statuses: list[int] = []

    @settings(
        max_examples=120,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(body=JUNK)
    def post_junk(client: httpx.Client, body: bytes) -> None:
        response = client.post("/api/batches", content=body)
        statuses.append(response.status_code)
        assert response.status_code in (201, 400, 409), response.text
        if response.status_code != 201:
            assert set(response.json()["error"]) == {"code", "message"}

    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            with httpx.Client(base_url=url, timeout=10) as sync_client:
                await trio.to_thread.run_sync(post_junk, sync_client, abandon_on_cancel=True)
            health = await client.get("/health")
            valid = await client.post("/api/batches", json={"type": "noop", "jobs": [{}]})
    assert 400 in statuses
    assert health.status_code == 200
    assert valid.status_code == 201
