"""The component schemas of ``GET /openapi.json``: every body the API takes
or gives, by name, as ``engine.server.openapi`` refers to them."""

from __future__ import annotations

from typing import Any

__all__ = ["BATCH_ID", "ERROR", "SCHEMAS", "ref"]

ERROR = {"$ref": "#/components/schemas/ErrorBody"}
BATCH_ID = {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}
_COUNT = {"type": "integer", "minimum": 0}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
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
        timeoutSeconds={"type": "number", "exclusiveMinimum": 0},
    ),
    "CreateBatch": _object(
        ["type", "jobs"],
        batchId=BATCH_ID,
        type={"type": "string", "minLength": 1},
        jobs={"type": "array", "items": ref("JobSpec")},
        options={
            "type": "object",
            "properties": {
                "after": {"type": "array", "items": BATCH_ID, "maxItems": 1000},
                "autoStart": {"type": "boolean"},
            },
        },
    ),
    "AddJobs": _object(["jobs"], jobs={"type": "array", "items": ref("JobSpec")}),
    "EnqueueResult": _object(
        ["batchId", "enqueued", "duplicates"],
        batchId=BATCH_ID,
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
        ["batchId", "type", "running", "engineId", "counts", "createdAt", "options", "child"],
        batchId=BATCH_ID,
        type={"type": "string"},
        running={"type": "boolean"},
        engineId={"type": ["string", "null"]},
        counts=ref("Counts"),
        createdAt={"type": "string", "format": "date-time"},
        options={"type": "object"},
        child={"oneOf": [ref("ChildView"), {"type": "null"}]},
    ),
    "ChildView": _object(
        ["pid", "rssBytes", "cpuSeconds", "jobsRun"],
        pid={"type": "integer"},
        rssBytes=_COUNT,
        cpuSeconds={"type": "number", "minimum": 0},
        jobsRun=_COUNT,
    ),
    "BatchList": _object(["batches"], batches={"type": "array", "items": ref("BatchView")}),
    "JobView": _object(
        [
            "jobId",
            "batchId",
            "type",
            "state",
            "payload",
            "attempts",
            "key",
            "priority",
            "cost",
            "progress",
            "result",
            "error",
            "createdAt",
            "startedAt",
            "finishedAt",
        ],
        jobId={"type": "string"},
        batchId=BATCH_ID,
        type={"type": "string"},
        state={"enum": ["pending", "active", "completed", "failed"]},
        payload={},
        attempts=_COUNT,
        key={"type": ["string", "null"]},
        priority={"type": "integer"},
        result={},
        error={"type": ["string", "null"]},
        cost={"type": "number", "exclusiveMinimum": 0},
        progress={"type": ["number", "null"], "minimum": 0, "maximum": 100},
        createdAt={"type": ["string", "null"], "format": "date-time"},
        startedAt={"type": ["string", "null"], "format": "date-time"},
        finishedAt={"type": ["string", "null"], "format": "date-time"},
    ),
    "JobStateView": _object(
        ["jobId", "state"],
        jobId={"type": "string"},
        state={"enum": ["pending", "active", "completed", "failed"]},
    ),
    "JobList": _object(
        ["jobs", "nextCursor"],
        jobs={"type": "array", "items": ref("JobView")},
        nextCursor={"type": ["string", "null"]},
    ),
    "ProcessResult": _object(
        ["status", "batchId"],
        status={"enum": ["started", "already-running", "capacity-reached"]},
        batchId=BATCH_ID,
    ),
    "EngineView": _object(
        ["engineId", "host", "pid", "runningBatches", "maxBatches", "lastSeen"],
        engineId={"type": "string"},
        host={"type": "string"},
        pid={"type": "integer"},
        runningBatches={"type": "array", "items": BATCH_ID},
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
        runningBatches={"type": "array", "items": BATCH_ID},
        activeBatches=_COUNT,
        maxBatches={"type": "integer", "minimum": 1},
        isShuttingDown={"type": "boolean"},
        paused={"type": "boolean"},
        engineId={"type": "string"},
        engines={"type": "array", "items": ref("EngineView")},
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
    "ScheduleView": _object(
        ["name", "cron", "type", "nextRunAt", "lastRunAt"],
        name={"type": "string"},
        cron={"type": "string", "description": "five fields, UTC"},
        type={"type": "string"},
        nextRunAt={"type": ["string", "null"], "format": "date-time"},
        lastRunAt={
            "type": ["string", "null"],
            "format": "date-time",
            "description": "due time of the last firing on any engine of the cluster",
        },
    ),
    "ScheduleList": _object(
        ["schedules"], schedules={"type": "array", "items": ref("ScheduleView")}
    ),
}
