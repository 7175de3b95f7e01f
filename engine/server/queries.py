"""Query parameters: each one parsed and described from the same object.

Design notes
------------
A route reads a query parameter through its ``Query`` (``parse`` refuses a
bad value with a 400 naming it), and the OpenAPI document lists the same
``Query`` (``parameter``), so what the document allows is what the route
accepts. An empty value is a value: ``?limit=`` is refused like
``?limit=ten``, since the document describes no empty limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from engine.server.errors import RequestError
from protocols.api import BATCH_ID_PATTERN
from protocols.control import MAX_SUBSCRIBED_BATCHES
from protocols.lifecycle import JobState

__all__ = [
    "BATCH_FLAG",
    "BATCH_IDS",
    "CURSOR",
    "LAST_EVENT_ID",
    "LIMIT",
    "MAX_PAGE",
    "RESUME_FROM",
    "STATE",
    "TOKEN",
    "Query",
]

T = TypeVar("T")

#: The largest page of jobs one request returns (and the default page).
MAX_PAGE = 1000
DEFAULT_PAGE = 100

#: Both stores' cursors are the decimal seq of a page's last job, which a
#: 64-bit integer holds in 18 digits.
_CURSOR = re.compile(r"[0-9]{1,18}")

#: Seqs are 64-bit counters.
_MAX_SEQ = 2**63 - 1


@attrs.frozen(kw_only=True)
class Query(Generic[T]):
    """One query parameter: its name, its schema, and how its text becomes a value.

    ``convert`` gets text that the schema allows (``check`` said so) and
    returns the value; ``check`` returns what is wrong, or ``""``.
    """

    name: str
    description: str
    schema: Mapping[str, Any]
    check: Callable[[str], str]
    convert: Callable[[str], T]
    repeated: bool = False
    max_items: int | None = None

    def parse(self, params: Mapping[str, str]) -> T | None:
        """The value of this parameter in ``params``; None when absent.

        Raises:
            RequestError: 400 ``invalid-query`` when the value is not allowed.
        """
        raw = params.get(self.name)
        return None if raw is None else self.value(raw)

    def parse_all(self, raws: list[str]) -> list[T]:
        """The values of a repeated parameter (``getlist``'s list).

        Raises:
            RequestError: 400 ``invalid-query`` when a value is not allowed.
        """
        if self.max_items is not None and len(raws) > self.max_items:
            message = f"{self.name} is given {len(raws)} times; at most {self.max_items}"
            raise RequestError(400, "invalid-query", message)
        return [self.value(raw) for raw in raws]

    def value(self, raw: str) -> T:
        """``raw`` as a value (for a header that stands in for this parameter too).

        Raises:
            RequestError: 400 ``invalid-query`` when ``raw`` is not allowed.
        """
        problem = self.check(raw)
        if problem:
            message = f"{self.name}={raw!r:.80} is invalid: {problem}"
            raise RequestError(400, "invalid-query", message)
        return self.convert(raw)

    def parameter(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema = dict(self.schema)
        if self.repeated:
            schema = {"type": "array", "items": schema}
            if self.max_items is not None:
                schema["maxItems"] = self.max_items
        described: dict[str, Any] = {"name": self.name, "in": "query"}
        return {**described, "description": self.description, "schema": schema}


def _whole(minimum: int, maximum: int) -> Callable[[str], str]:
    def check(raw: str) -> str:
        if raw.isascii() and raw.isdigit() and minimum <= int(raw) <= maximum:
            return ""
        return f"expected an integer from {minimum} to {maximum}"

    return check


def _matching(pattern: re.Pattern[str], expected: str) -> Callable[[str], str]:
    return lambda raw: "" if pattern.fullmatch(raw) else expected


def _one_of(values: Mapping[str, object]) -> Callable[[str], str]:
    return lambda raw: "" if raw in values else f"expected one of {', '.join(values)}"


def _seq(name: str, description: str) -> Query[int]:
    return Query(
        name=name,
        description=description,
        schema={"type": "integer", "minimum": 0, "maximum": _MAX_SEQ},
        check=_whole(0, _MAX_SEQ),
        convert=int,
    )


_STATES = {state.value: state for state in JobState}
_FLAGS = {"0": False, "1": True}

STATE: Query[JobState] = Query(
    name="state",
    description="only jobs in this state",
    schema={"type": "string", "enum": list(_STATES)},
    check=_one_of(_STATES),
    convert=_STATES.__getitem__,
)
LIMIT: Query[int] = Query(
    name="limit",
    description=f"page size (default {DEFAULT_PAGE})",
    schema={"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    check=_whole(1, MAX_PAGE),
    convert=int,
)
CURSOR: Query[str] = Query(
    name="cursor",
    description="nextCursor of the previous page",
    schema={"type": "string", "pattern": f"^{_CURSOR.pattern}$"},
    check=_matching(_CURSOR, "not a cursor: use nextCursor of the previous page"),
    convert=str,
)
BATCH_IDS: Query[str] = Query(
    name="batchId",
    description="only events of this batch; repeat for several, omit for all",
    schema={"type": "string", "pattern": f"^{BATCH_ID_PATTERN.pattern}$"},
    check=_matching(BATCH_ID_PATTERN, "not a batch id"),
    convert=str,
    repeated=True,
    max_items=MAX_SUBSCRIBED_BATCHES,
)
LAST_EVENT_ID = _seq(
    "lastEventId",
    "replay retained events after this seq (the Last-Event-ID header wins)",
)
RESUME_FROM = _seq("resumeFrom", "replay every retained event with a greater seq first")
BATCH_FLAG: Query[bool] = Query(
    name="batch",
    description="1: each message is a JSON array of frames",
    schema={"type": "string", "enum": list(_FLAGS)},
    check=_one_of(_FLAGS),
    convert=_FLAGS.__getitem__,
)
TOKEN: Query[str] = Query(
    name="token",
    description="the bearer token, for clients that cannot set a header",
    schema={"type": "string"},
    check=lambda raw: "",
    convert=str,
)
