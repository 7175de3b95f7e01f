"""``GET /openapi.json``: an OpenAPI 3.1 description of the API.

Design notes
------------
Written by hand (the schemas in ``engine.server.openapi_schemas``), because the routes decode their
bodies with ``protocols.api`` rather than with annotations a generator could
read. A test checks that every route of the app appears here with each of its
methods, so a route cannot be added without being described. ``/ws`` appears
as the ``GET`` that upgrades to a WebSocket, which is as far as OpenAPI goes.
"""

from __future__ import annotations

from typing import Any

from engine.server.openapi_schemas import BATCH_ID as _BATCH_ID
from engine.server.openapi_schemas import ERROR as _ERROR
from engine.server.openapi_schemas import SCHEMAS as _SCHEMAS
from engine.server.openapi_schemas import ref as _ref

__all__ = ["openapi_document"]


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "bad input: the message names the field",
        404: "no such batch (or job)",
        409: "conflict with the batch's (or job's) state",
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


def _job_paths() -> dict[str, Any]:
    p = ({"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}},)
    state = _json("the job's state afterwards", _ref("JobStateView"))
    return {
        "/api/jobs/{jobId}": {
            "get": _op(
                "one job", {"200": _json("the job", _ref("JobView")), **_errors(404)}, params=p
            )
        },
        "/api/jobs/{jobId}/cancel": {
            "post": _op(
                "pending: failed 'cancelled'; active: cancelled in its child (replaced "
                "after SHUTDOWN_GRACE_SECONDS if its handler does not return)",
                {"200": state, **_errors(404, 409)},
                params=p,
            )
        },
        "/api/jobs/{jobId}/retry": {
            "post": _op(
                "a failed job back to pending", {"200": state, **_errors(404, 409)}, params=p
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
        "/api/schedules": {
            "get": _op(
                "every schedule with its next and last firing",
                {"200": _json("schedules", _ref("ScheduleList"))},
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
        "paths": {
            **_collection_paths(),
            **_batch_paths(),
            **_job_paths(),
            **_engine_paths(),
            **_other_paths(),
        },
        "components": {"schemas": _SCHEMAS},
    }
    if secured:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        document["security"] = [{"bearer": []}]
    return document
