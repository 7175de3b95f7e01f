"""``GET /openapi.json``: the OpenAPI 3.1 document, built from what the server checks.

Design notes
------------
Nothing in the document is written twice. Bodies are the ``protocols.api``
classes the routes decode and encode, turned into JSON Schema by
``protocols.jsonschema`` (each bound read off the validator that enforces
it); query parameters are the ``engine.server.queries`` objects the routes
parse with; path parameters are listed once in ``_PATH_PARAMS``. What is
left to write by hand is one entry per route in ``_OPERATIONS``: a summary,
the body class, the query parameters and the answers by status. A test
checks that every route of the app has its entry, with each of its methods.

Job types are named by the server that serves the document (a type it does
not know is refused with 400), so the document lists them.

The two event routes are streams, and OpenAPI describes only their opening:
``GET /api/events`` answers ``text/event-stream``, ``/ws`` is the ``GET``
that upgrades to a WebSocket (101), and a plain ``GET`` of it is answered
426 with ``Upgrade: websocket``. The frames are described in words.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import attrs

from engine.server import queries
from engine.server.queries import Query
from protocols import api, job_api
from protocols.api_schedules import ScheduleList
from protocols.control import MAX_CLIENT_MESSAGE_BYTES, MAX_SUBSCRIBED_BATCHES
from protocols.events import EVENT_TYPES
from protocols.jsonschema import REF_PREFIX, component_schemas, field_schema

__all__ = ["openapi_document"]


@attrs.frozen(kw_only=True)
class Answer:
    """One documented answer: what it means, its JSON body class or media
    type, and its headers."""

    description: str
    body: type[Any] | None = None
    media: str | None = None
    headers: Mapping[str, Any] = attrs.field(factory=dict)
    media_schema: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "string"})


@attrs.frozen(kw_only=True)
class Op:
    """One operation: ``answers`` maps a status to its body class or an ``Answer``.

    ``open`` operations need no token; every other one may answer 401.
    """

    summary: str
    answers: Mapping[int, type[Any] | Answer]
    body: type[Any] | None = None
    query: tuple[Query[Any], ...] = ()
    open: bool = False


ERROR = api.ErrorBody

_MEANINGS = {
    200: "done",
    201: "created",
    202: "accepted",
    204: "done, no body",
    400: "bad input: the message names the field",
    401: "missing or wrong token",
    404: "not found: no such batch (or job)",
    409: "conflict with the current state",
    413: "body over the size limit",
    426: "not a WebSocket handshake",
    429: "capacity reached",
    500: "the child process could not be started",
    503: "the engine is shutting down, or the store is unavailable",
}

_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}

_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "batchId": field_schema(attrs.fields(api.CreateBatch).batch_id, str, []),
    "jobId": {"type": "string", "minLength": 1},
    "name": {"type": "string", "pattern": "^[a-z]+[.](?:css|html|js|svg)$"},
}

_WS = (
    "WebSocket of frames {event, seq, data} (with ?batch=1, each message a JSON array of "
    "the frames queued since the last one, in seq order). The client may send "
    '{"subscribe": [batchId...]}, {"unsubscribe": [...]} and {"resumeFrom": seq}. '
    "Close codes: 1001 server shutting down, 1003 binary or non-JSON message, "
    "1007 invalid control message, 1008 missing or wrong token, or more than "
    f"{MAX_SUBSCRIBED_BATCHES} batches subscribed, 1009 a message over "
    f"{MAX_CLIENT_MESSAGE_BYTES} bytes, 1013 slow subscriber (resume from the seq in the reason)."
)
_SSE = (
    "Server-Sent Events: each frame is id: SEQ, event: NAME, data: JSON of the event's "
    "data; honours the Last-Event-ID header; a comment line keeps an idle stream open."
)

#: One SSE frame: its seq, the event's name, the event's data as JSON.
_SSE_FRAME = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}

#: Every route, by path and method. A new route is one entry here: its body
#: and answer classes from ``protocols.api``, its ``queries`` objects, and a
#: ``_PATH_PARAMS`` row for a path parameter not listed yet.
_OPERATIONS: dict[str, dict[str, Op]] = {
    "/api/batches": {
        "get": Op(summary="list batches with counts", answers={200: api.BatchList}),
        "post": Op(
            summary="create a batch and enqueue its jobs",
            body=api.CreateBatch,
            answers={201: api.EnqueueResult, 400: ERROR, 409: ERROR, 413: ERROR, 503: ERROR},
        ),
    },
    "/api/batches/{batchId}": {
        "get": Op(summary="one batch", answers={200: api.BatchView, 404: ERROR}),
        "delete": Op(
            summary="delete an idle batch and its jobs",
            answers={204: Answer(description="deleted"), 404: ERROR, 409: ERROR},
        ),
    },
    "/api/batches/{batchId}/jobs": {
        "get": Op(
            summary="a page of the batch's jobs",
            query=(queries.STATE, queries.LIMIT, queries.CURSOR),
            answers={200: api.JobList, 400: ERROR, 404: ERROR},
        ),
        "post": Op(
            summary="add jobs to a batch",
            body=api.AddJobs,
            answers={201: api.EnqueueResult, 400: ERROR, 404: ERROR, 413: ERROR, 503: ERROR},
        ),
    },
    "/api/batches/{batchId}/retry": {
        "post": Op(summary="failed jobs back to pending", answers={200: api.Requeued, 404: ERROR}),
    },
    "/api/batches/{batchId}/cancel": {
        "post": Op(
            summary="stop a running batch; in-flight jobs go back to pending",
            answers={200: api.BatchView, 404: ERROR, 409: ERROR},
        ),
    },
    "/api/jobs/process/all/{batchId}": {
        "post": Op(
            summary="process every pending job of the batch in a child process",
            answers={
                200: Answer(description="started", body=api.ProcessResult),
                202: Answer(description="already running", body=api.ProcessResult),
                429: Answer(
                    description="capacity reached", body=api.ProcessResult, headers=_RETRY_AFTER
                ),
                404: ERROR,
                500: ERROR,
                503: ERROR,
            },
        ),
    },
    "/api/jobs/{jobId}": {
        "get": Op(summary="one job", answers={200: api.JobView, 404: ERROR}),
    },
    "/api/jobs/{jobId}/cancel": {
        "post": Op(
            summary="cancel one job: pending at once, active in its child",
            answers={200: job_api.JobStateView, 404: ERROR, 409: ERROR},
        ),
    },
    "/api/jobs/{jobId}/retry": {
        "post": Op(
            summary="a failed job back to pending",
            answers={200: job_api.JobStateView, 404: ERROR, 409: ERROR},
        ),
    },
    "/api/types": {
        "get": Op(summary="the registered job types", answers={200: api.TypeList}),
    },
    "/api/schedules": {
        "get": Op(
            summary="every schedule with its next and last firing", answers={200: ScheduleList}
        ),
    },
    "/api/pause": {"post": Op(summary="stop handing out jobs", answers={200: api.StatusView})},
    "/api/resume": {"post": Op(summary="hand out jobs again", answers={200: api.StatusView})},
    "/api/status": {"get": Op(summary="what the engine is doing", answers={200: api.StatusView})},
    "/health": {
        "get": Op(
            summary="store and engine health",
            open=True,
            answers={
                200: Answer(description="ok", body=api.HealthView),
                503: Answer(description="degraded", body=api.HealthView),
            },
        ),
    },
    "/api/events": {
        "get": Op(
            summary=_SSE,
            query=(queries.BATCH_IDS, queries.LAST_EVENT_ID),
            answers={
                200: Answer(
                    description="event stream", media="text/event-stream", media_schema=_SSE_FRAME
                ),
                400: ERROR,
            },
        ),
    },
    "/ws": {
        "get": Op(
            summary=_WS,
            query=(queries.BATCH_IDS, queries.RESUME_FROM, queries.BATCH_FLAG, queries.TOKEN),
            answers={
                101: Answer(description="switching protocols: the WebSocket"),
                400: ERROR,
                426: Answer(
                    description=_MEANINGS[426],
                    body=ERROR,
                    headers={"Upgrade": {"schema": {"type": "string", "enum": ["websocket"]}}},
                ),
            },
        ),
    },
    "/metrics": {
        "get": Op(
            summary="Prometheus metrics",
            answers={200: Answer(description="text format", media="text/plain")},
        ),
    },
    "/openapi.json": {
        "get": Op(
            summary="this document",
            open=True,
            answers={200: Answer(description="OpenAPI 3.1", media="application/json")},
        ),
    },
    "/static/{name}": {
        "get": Op(
            summary="the dashboard's page, scripts, stylesheet and icon",
            open=True,
            answers={
                200: Answer(description="the file: HTML, JavaScript, CSS or SVG"),
                404: ERROR,
            },
        ),
    },
    "/": {
        "get": Op(
            summary="the dashboard page",
            open=True,
            answers={200: Answer(description="HTML", media="text/html")},
        ),
    },
}

_PATH_PARAM = re.compile(r"{(\w+)}")


def _answer(status: int, answer: type[Any] | Answer) -> dict[str, Any]:
    if not isinstance(answer, Answer):
        answer = Answer(description=_MEANINGS[status], body=answer)
    described: dict[str, Any] = {"description": answer.description}
    if answer.body is not None:
        schema = {"$ref": REF_PREFIX + answer.body.__name__}
        described["content"] = {"application/json": {"schema": schema}}
    elif answer.media is not None:
        described["content"] = {answer.media: {"schema": dict(answer.media_schema)}}
    if answer.headers:
        described["headers"] = dict(answer.headers)
    return described


def _operation(path: str, op: Op, *, secured: bool) -> dict[str, Any]:
    answers = dict(op.answers)
    if secured and not op.open:
        answers[401] = ERROR
    described: dict[str, Any] = {
        "summary": op.summary,
        "responses": {str(status): _answer(status, a) for status, a in sorted(answers.items())},
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMS[name]}
        for name in _PATH_PARAM.findall(path)
    ]
    params += [query.parameter() for query in op.query]
    if params:
        described["parameters"] = params
    if op.body is not None:
        schema = {"$ref": REF_PREFIX + op.body.__name__}
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    if op.open:
        described["security"] = []
    return described


def _body_classes() -> list[type[Any]]:
    classes: list[type[Any]] = []
    for ops in _OPERATIONS.values():
        for op in ops.values():
            bodies = [
                op.body,
                *(a.body if isinstance(a, Answer) else a for a in op.answers.values()),
            ]
            classes += [body for body in bodies if body is not None]
    return classes


def openapi_document(
    version: str, *, secured: bool, job_types: Collection[str] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API.

    Args:
        version: the server's version.
        secured: whether a bearer token is required (it adds the scheme and 401s).
        job_types: the job types the server knows; bodies list them as the
            only allowed ``type`` values (without it, any non-empty name).
    """
    paths = {
        path: {method: _operation(path, op, secured=secured) for method, op in ops.items()}
        for path, ops in _OPERATIONS.items()
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "batchyard", "version": version},
        "paths": paths,
        "components": {"schemas": component_schemas(_body_classes(), job_types=job_types)},
    }
    if secured:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        document["security"] = [{"bearer": []}]
    return document
