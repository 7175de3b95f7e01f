"""The JSON log format: one object per line, with the batch and job a
record names (or whose ``[batch ID]`` prefix names the batch)."""

from __future__ import annotations

import json
import logging
import sys

from engine.core.logs import JsonFormatter, log_fields


def _record(message: str, *, exc: bool = False, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("batchyard.x", logging.WARNING, __file__, 1, message, (), None)
    if exc:
        try:
            raise ValueError("bad")
        except ValueError:
            record.exc_info = sys.exc_info()
    record.__dict__.update(extra)
    return record


def _format(record: logging.LogRecord) -> dict[str, object]:
    text = JsonFormatter().format(record)
    assert "\n" not in text
    parsed: dict[str, object] = json.loads(text)
    return parsed


def test_a_record_names_its_batch_and_job() -> None:
    line = _format(_record("job done", **log_fields("b1", "j1")))
    assert line.keys() == {"time", "level", "logger", "message", "batchId", "jobId"}
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING",
        "batchyard.x",
        "job done",
    )
    assert (line["batchId"], line["jobId"]) == ("b1", "j1")
    assert str(line["time"]).endswith("+00:00")


def test_a_batch_prefix_names_the_batch_unless_the_record_says_none() -> None:
    assert _format(_record("[batch b-2] started by itself"))["batchId"] == "b-2"
    assert "batchId" not in _format(_record("[batch warm] ready", batchId=None))
    assert "batchId" not in _format(_record("nothing about a batch"))


def test_a_traceback_stays_in_the_one_line() -> None:
    line = _format(_record("it broke", exc=True))
    assert str(line["message"]).startswith("it broke\nTraceback")
    assert "ValueError: bad" in str(line["message"])
