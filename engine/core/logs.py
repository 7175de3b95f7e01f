"""The one logging setup of every command that runs an engine (``serve``,
``worker``, ``demo``): text lines, or one JSON object per line.

Design notes
------------
``configure_logging`` puts one handler on the root logger, writing to
stderr, so every logger of the process goes through it: the engine's own
(``batchyard.*``), hypercorn's error log (``batchyard.http``) and the
lines the engine relays from its children's stdout and stderr
(``batchyard.child``, each as its own record). So with ``json`` every line
the process writes is one JSON object, a child's included.

A JSON line has ``time`` (ISO 8601, UTC, milliseconds), ``level``,
``logger`` and ``message`` (with the traceback appended when the record
has one), plus ``batchId`` and ``jobId`` where they apply. A record says
which through the ``extra`` keys ``batchId`` and ``jobId``
(``log_fields``); a record without a ``batchId`` key whose message begins
``[batch ID]``, as the engine's lines about one batch do, gets that
``batchId`` (a record may set the key to None: no batch, whatever the
message says).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from engine.config.settings import Settings

__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
    "configure_logging",
    "configure_logging_from",
    "log_fields",
]

#: The text format: time, level, logger, message.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_LOG_VARIABLES = ("BATCHYARD_LOG_FORMAT", "BATCHYARD_LOG_LEVEL")

_BATCH_PREFIX = re.compile(r"\[batch ([^\]\s]+)\]")


def log_fields(batch_id: str | None = None, job_id: str | None = None) -> dict[str, str]:
    """The ``extra`` of a log call about a batch or a job."""
    fields = {}
    if batch_id is not None:
        fields["batchId"] = batch_id
    if job_id is not None:
        fields["jobId"] = job_id
    return fields


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line (see the module notes)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        batch_id = getattr(record, "batchId", None)
        if not hasattr(record, "batchId") and (prefix := _BATCH_PREFIX.match(message)):
            batch_id = prefix[1]
        if batch_id is not None:
            line["batchId"] = batch_id
        job_id = getattr(record, "jobId", None)
        if job_id is not None:
            line["jobId"] = job_id
        return orjson.dumps(line, default=str).decode()


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    """Make the root logger write ``log_format`` (``text`` or ``json``)
    lines to stderr from ``level`` (``debug``, ``info``, ``warning``,
    ``error``) up, replacing the handlers it had (so calling it again
    switches the format). ``debug`` applies to batchyard's loggers only;
    Python's warnings are logged too (logger ``py.warnings``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # DEBUG is for batchyard's own lines; other libraries stay at INFO.
    numeric = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(max(numeric, logging.INFO))
    logging.getLogger("batchyard").setLevel(numeric)
    logging.captureWarnings(True)


def configure_logging_from(environ: Mapping[str, str]) -> None:
    """``configure_logging`` as ``BATCHYARD_LOG_FORMAT`` and
    ``BATCHYARD_LOG_LEVEL`` in ``environ`` say, for a command that reads no
    other setting (``demo``).

    Raises:
        ConfigError: either variable's value is invalid.
    """
    settings = Settings.load({name: environ[name] for name in _LOG_VARIABLES if name in environ})
    configure_logging(settings.log_format, settings.log_level)
