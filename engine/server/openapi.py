"""``GET /openapi.json``: an OpenAPI 3.1 description of the API.

Design notes
------------
Written by hand, next to nothing but itself, because the routes decode their
bodies with ``protocols.api`` rather than with annotations a generator could
read. A test checks that every route of the app appears here with each of its
methods, so a route cannot be added without being described. ``/ws`` appears
as the ``GET`` that upgrades to a WebSocket, which is as far as OpenAPI goes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/ErrorBody"}
_BATCH_ID = {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}
_COUNT = {"type": "integer", "minimum": 0}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_SCHEMAS: dict[str, Any] = {
    "ErrorBody": _object(
        ["error"],
        error=_object(["code", "message"], code={"type": "string"}, message={"type": "string"}),
    ),
    "JobSpec": _object(
        [],
        payload={},
        type={"type": "string", "minLength": 1},
        key={"type": "string", "minLength": 1, "maxLength": 1024},
        priority={"type": "integer", "minimum": -(2**21), "maximum": 2**21},
        delaySeconds={"type": "number", "minimum": 0},
        cost={"type": "number", "exclusiveMinimum": 0},
    ),
    "CreateBatch": _object(
        ["type", "jobs"],
        batchId=_BATCH_ID,
        type={"type": "string", "minLength": 1},
        jobs={"type": "array", "items": _ref("JobSpec")},
        options={
            "type": "object",
            "properties": {
                "after": {"type": "array", "items": _BATCH_ID, "maxItems": 1000},
                "autoStart": {"type": "boolean"},
            },
        },
    ),
    "AddJobs": _object(["jobs"], jobs={"type": "array", "items": _ref("JobSpec")}),
    "EnqueueResult": _object(
        ["batchId", "enqueued", "duplicates"],
        batchId=_BATCH_ID,
        enqueued=_COUNT,
        duplicates=_COUNT,
    ),
    "Counts": _object(
        ["pending", "active", "completed", "failed"],
        pending=_COUNT,
        active=_COUNT,
        completed=_COUNT,
        failed=_COUNT,
    ),
    "BatchView": _object(
        ["batchId", "type", "running", "engineId", "counts", "createdAt", "options"],
        batchId=_BATCH_ID,
        type={"type": "string"},
        running={"type": "boolean"},
        engineId={"type": ["string", "null"]},
        counts=_ref("Counts"),
        createdAt={"type": "string", "format": "date-time"},
        options={"type": "object"},
    ),
    "BatchList": _object(["batches"], batches={"type": "array", "items": _ref("BatchView")}),
    "JobView": _object(
        ["jobId", "type", "state", "payload", "attempts", "key", "priority", "result", "error"],
        jobId={"type": "string"},
        type={"type": "string"},
        state={"enum": ["pending", "active", "completed", "failed"]},
        payload={},
        attempts=_COUNT,
        key={"type": ["string", "null"]},
        priority={"type": "integer"},
        result={},
        error={"type": ["string", "null"]},
        cost={"type": "number", "exclusiveMinimum": 0},
    ),
    "JobList": _object(
        ["jobs", "nextCursor"],
        jobs={"type": "array", "items": _ref("JobView")},
        nextCursor={"type": ["string", "null"]},
    ),
    "ProcessResult": _object(
        ["status", "batchId"],
        status={"enum": ["started", "already-running", "capacity-reached"]},
        batchId=_BATCH_ID,
    ),
    "EngineView": _object(
        ["engineId", "host", "pid", "runningBatches", "maxBatches", "lastSeen"],
        engineId={"type": "string"},
        host={"type": "string"},
        pid={"type": "integer"},
        runningBatches={"type": "array", "items": _BATCH_ID},
        maxBatches={"type": "integer", "minimum": 1},
        lastSeen={"type": "string", "format": "date-time"},
    ),
    "StatusView": _object(
        [
            "runningBatches",
            "activeBatches",
            "maxBatches",
            "isShuttingDown",
            "paused",
            "engineId",
            "engines",
        ],
        runningBatches={"type": "array", "items": _BATCH_ID},
        activeBatches=_COUNT,
        maxBatches={"type": "integer", "minimum": 1},
        isShuttingDown={"type": "boolean"},
        paused={"type": "boolean"},
        engineId={"type": "string"},
        engines={"type": "array", "items": _ref("EngineView")},
    ),
    "HealthView": _object(
        ["status", "services", "metrics"],
        status={"enum": ["ok", "degraded"]},
        services={"type": "object", "additionalProperties": {"type": "string"}},
        metrics=_object(
            ["queueLength", "activeWorkers"], queueLength=_COUNT, activeWorkers=_COUNT
        ),
    ),
    "Requeued": _object(["requeued"], requeued=_COUNT),
}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "bad input: the message names the field",
        404: "no such batch",
        409: "conflict with the batch's state",
        413: "body over the size limit",
        500: "the child process could not be started",
        503: "the engine is shutting down, or the store is unavailable",
    }
    return {str(status): _json(meaning[status], _ERROR) for status in statuses}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: str | None = None,
    params: tuple[dict[str, Any], ...] = (),
    open_: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if params:
        operation["parameters"] = list(params)
    if open_:
        operation["security"] = []
    else:
        responses["401"] = _json("missing or wrong token (when the server has one)", _ERROR)
    return operation


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


_NAME = {"type": "string"}
_NAMES = {"type": "array", "items": _NAME}
_PATH_ID = {"name": "batchId", "in": "path", "required": True, "schema": _BATCH_ID}
_FILTER = _query(
    "batchId",
    "only events of this batch; repeat for several, omit for all",
    {"type": "array", "items": _BATCH_ID},
)


def _collection_paths() -> dict[str, Any]:
    return {
        "/api/batches": {
            "get": _op("list batches with counts", {"200": _json("batches", _ref("BatchList"))}),
            "post": _op(
                "create a batch and enqueue its jobs",
                {"201": _json("enqueued", _ref("EnqueueResult")), **_errors(400, 409, 413, 503)},
                body="CreateBatch",
            ),
        },
    }


def _batch_paths() -> dict[str, Any]:
    p = (_PATH_ID,)
    return {
        "/api/batches/{batchId}": {
            "get": _op(
                "one batch", {"200": _json("batch", _ref("BatchView")), **_errors(404)}, params=p
            ),
            "delete": _op(
                "delete an idle batch and its jobs",
                {"204": {"description": "deleted"}, **_errors(404, 409)},
                params=p,
            ),
        },
        "/api/batches/{batchId}/jobs": {
            "get": _op(
                "a page of the batch's jobs",
                {"200": _json("jobs", _ref("JobList")), **_errors(400, 404)},
                params=(
                    *p,
                    _query(
                        "state",
                        "only jobs in this state",
                        _SCHEMAS["JobView"]["properties"]["state"],
                    ),
                    _query(
                        "limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}
                    ),
                    _query("cursor", "nextCursor of the previous page", {"type": "string"}),
                ),
            ),
            "post": _op(
                "add jobs to a batch",
                {"201": _json("enqueued", _ref("EnqueueResult")), **_errors(400, 404, 413, 503)},
                body="AddJobs",
                params=p,
            ),
        },
        "/api/batches/{batchId}/retry": {
            "post": _op(
                "failed jobs back to pending",
                {"200": _json("requeued", _ref("Requeued")), **_errors(404)},
                params=p,
            )
        },
        "/api/batches/{batchId}/cancel": {
            "post": _op(
                "stop a running batch; in-flight jobs go back to pending",
                {
                    "200": _json("the batch, still stopping", _ref("BatchView")),
                    **_errors(404, 409),
                },
                params=p,
            )
        },
    }


def _engine_paths() -> dict[str, Any]:
    started = _json("the run's state", _ref("ProcessResult"))
    status = {"200": _json("the engine's state", _ref("StatusView"))}
    return {
        "/api/jobs/process/all/{batchId}": {
            "post": _op(
                "process every pending job of the batch in a child process",
                {
                    "200": started,
                    "202": {**started, "description": "already running"},
                    "429": {
                        **started,
                        "description": "capacity reached",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
                    **_errors(404, 500, 503),
                },
                params=(_PATH_ID,),
            )
        },
        "/api/pause": {"post": _op("stop handing out jobs", dict(status))},
        "/api/resume": {"post": _op("hand out jobs again", dict(status))},
        "/api/status": {"get": _op("what the engine is doing", dict(status))},
        "/api/types": {
            "get": _op(
                "the registered job types",
                {"200": _json("names", {"type": "object", "properties": {"types": _NAMES}})},
            )
        },
        "/health": {
            "get": _op(
                "store and engine health",
                {
                    "200": _json("ok", _ref("HealthView")),
                    "503": _json("degraded", _ref("HealthView")),
                },
                open_=True,
            )
        },
    }


def _other_paths() -> dict[str, Any]:
    resume = _query("lastEventId", "replay retained events after this seq", {"type": "integer"})
    return {
        "/api/events": {
            "get": _op(
                "Server-Sent Events: id is the seq; honours the Last-Event-ID header",
                {
                    "200": {"description": "event stream", "content": {"text/event-stream": {}}},
                    **_errors(400),
                },
                params=(_FILTER, resume),
            )
        },
        "/ws": {
            "get": _op(
                "WebSocket of frames {event, seq, data} (with ?batch=1, each message a JSON "
                "array of the frames queued since the last one, in seq order); send "
                "{subscribe}, {unsubscribe}, {resumeFrom}; ?resumeFrom= replays from the "
                "start; token may be passed as ?token=",
                {"101": {"description": "switching protocols"}, **_errors(400)},
                params=(
                    _FILTER,
                    _query(
                        "resumeFrom",
                        "replay every retained event with a greater seq first",
                        {"type": "integer", "minimum": 0},
                    ),
                    _query(
                        "batch",
                        "1: each message is a JSON array of frames",
                        {"type": "integer", "enum": [0, 1]},
                    ),
                    _query("token", "the bearer token", {"type": "string"}),
                ),
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {"200": {"description": "text format", "content": {"text/plain": {}}}},
            )
        },
        "/openapi.json": {
            "get": _op("this document", {"200": {"description": "OpenAPI 3.1"}}, open_=True)
        },
        "/": {"get": _op("the dashboard page", {"200": {"description": "HTML"}}, open_=True)},
        "/static/{name}": {
            "get": _op(
                "the dashboard's scripts, stylesheet and icon",
                {"200": {"description": "the file"}, **_errors(404)},
                params=({"name": "name", "in": "path", "required": True, "schema": _NAME},),
                open_=True,
            )
        },
    }


def openapi_document(version: str, *, secured: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API.

    Args:
        version: the server's version.
        secured: whether a bearer token is required (it adds the scheme).
    """
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "batchyard", "version": version},
        "paths": {**_collection_paths(), **_batch_paths(), **_engine_paths(), **_other_paths()},
        "components": {"schemas": _SCHEMAS},
    }
    if secured:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        document["security"] = [{"bearer": []}]
    return document
