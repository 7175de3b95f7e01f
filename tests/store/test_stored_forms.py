"""What a store reads back, fuzzed: a record it cannot read is a
``StoreError`` naming what it is, never a bare ``ValueError``,
``KeyError`` or ``TypeError`` (which the API would answer as a bug).

The decoders: ``_json.load`` (payloads, results, options, engine records on
both backends), the Redis job hash and batch fields (``job_record``,
``batch_record``), SQLite's job and batch rows, and both backends'
``parse_cursor`` (``ValueError`` by contract: the API refuses such a
cursor before it reaches a store).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import StoreError
from engine.store import BatchRecord, JobRecord, NewJob, _json
from engine.store import _redis_values as redis_values
from engine.store import _sqlite_ops as sqlite_ops
from engine.store._redis_layout import JOB_FIELDS
from engine.store.sqlite import open_sqlite_store
from tests.protocols.strategies import JSON, SETTINGS

TEXT = st.text(max_size=30)
#: What a Redis hash or an SQLite column can hand back.
CELLS = st.none() | TEXT | st.integers(-(2**70), 2**70) | st.floats() | st.binary(max_size=10)
JSON_TEXT = JSON.map(_json.dump)


@SETTINGS
@given(JSON.filter(lambda value: value is not None) | st.integers(-(2**200), 2**200))
def test_json_round_trips_any_value_wide_integers_included(value: Any) -> None:
    assert _json.load(_json.dump(value)) == value


@SETTINGS
@given(TEXT | JSON_TEXT | st.binary(max_size=20) | st.none() | st.integers())
def test_json_load_raises_only_store_error(text: Any) -> None:
    try:
        _json.load(text)
    except StoreError as exc:
        assert "JSON value" in str(exc)


def _valid_job_hash() -> list[Any]:
    return [
        "1", "j1", "b", "echo", "pending", "null", "0", "1", "skey", "0",
        None, None, None, "1.5", "1.5", "1.0", "2.0", None, "40", "3.5",
    ]  # fmt: skip


@SETTINGS
@given(st.data())
def test_redis_job_hash_decodes_or_raises_store_error(data: st.DataObject) -> None:
    fields = _valid_job_hash()
    assert len(fields) == len(JOB_FIELDS)
    assert isinstance(redis_values.job_record(fields), JobRecord)
    for index in data.draw(st.lists(st.integers(0, len(fields) - 1), max_size=3)):
        fields[index] = data.draw(CELLS | JSON_TEXT)
    if data.draw(st.booleans()):
        fields = fields[: data.draw(st.integers(0, len(fields)))]
    try:
        record = redis_values.job_record(fields)
    except StoreError as exc:
        assert "cannot read" in str(exc)
    else:
        assert isinstance(record, JobRecord)


@SETTINGS
@given(TEXT | st.none(), CELLS, CELLS | JSON_TEXT, st.lists(CELLS, max_size=5))
def test_redis_batch_fields_decode_or_raise_store_error(
    type_: Any, created_at: Any, options: Any, counts: list[Any]
) -> None:
    try:
        record = redis_values.batch_record("b", type_, created_at, options, counts, None)
    except StoreError as exc:
        assert "cannot read" in str(exc)
    else:
        assert isinstance(record, BatchRecord)


@SETTINGS
@given(st.lists(CELLS | JSON_TEXT, max_size=20), st.lists(CELLS | JSON_TEXT, max_size=6))
def test_sqlite_rows_decode_or_raise_store_error(job_row: list[Any], batch_row: list[Any]) -> None:
    for decode in (
        lambda: sqlite_ops._job(job_row),
        lambda: sqlite_ops.batch_record(batch_row, redis_values.counts_of([0, 0, 0, 0])),
    ):
        try:
            record = decode()
        except StoreError as exc:
            assert "cannot read" in str(exc)
        else:
            assert isinstance(record, JobRecord | BatchRecord)


@SETTINGS
@given(TEXT)
def test_cursors_parse_or_raise_value_error(cursor: str) -> None:
    for parse in (redis_values.parse_cursor, sqlite_ops.parse_cursor):
        try:
            assert parse(cursor) >= 0
        except ValueError as exc:
            assert "cursor" in str(exc)


async def test_a_corrupt_sqlite_job_is_a_store_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with trio.fail_after(20):
        async with open_sqlite_store(str(path)) as store:
            await store.create_batch("b", "echo", {})
            await store.add_jobs("b", [NewJob(type="echo", payload={"n": 1})])
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE jobs SET payload = '{not json'")
        async with open_sqlite_store(str(path)) as store:
            with pytest.raises(StoreError, match="job this version cannot read"):
                await store.list_jobs("b", limit=10)
            assert (await store.get_batch("b")).batch_id == "b"  # the rest still reads
