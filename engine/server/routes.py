"""The JSON routes of the API: batches, jobs, runs, pause, status, schedules,
health.

Design notes
------------
Each route decodes its input, makes one or two engine calls and encodes the
answer; every failure is raised and turned into a response by
``engine.server.errors``. Bodies are decoded strictly by ``protocols.api``
(its ``InvalidBody`` carries the wire path of each fault); query parameters
are checked by their ``engine.server.queries`` objects, which the OpenAPI
document lists too.

``POST /api/jobs/process/all/{batchId}`` answers the engine's ``StartResult``
by status: 200 started, 202 already running, 429 capacity reached. The
engine never waits for capacity, and capacity frees only when some run ends,
which nobody can predict; ``Retry-After`` is a short fixed hint, since a
retry costs the server one store read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.core.engine import Engine, StartResult
from engine.core.values import JobRequest
from engine.errors import StoreError
from engine.server import heap, queries
from engine.server.job_routes import job_routes
from engine.server.views import (
    batch_view,
    job_requests,
    job_view,
    json_response,
    schedule_view,
    status_view,
)
from engine.store import AddResult, BatchRecord
from protocols import api
from protocols.api_schedules import ScheduleList

__all__ = ["api_routes"]

Endpoint = Callable[[Request], Awaitable[Response]]

_T = TypeVar("_T")

RETRY_AFTER_SECONDS = 1

_START_ANSWERS: Mapping[StartResult, tuple[int, api.ProcessStatus]] = {
    StartResult.STARTED: (200, "started"),
    StartResult.ALREADY_RUNNING: (202, "already-running"),
    StartResult.CAPACITY_REACHED: (429, "capacity-reached"),
}


def _enqueued(batch_id: str, result: AddResult) -> Response:
    body = api.EnqueueResult(
        batch_id=batch_id, enqueued=result.enqueued, duplicates=result.duplicates
    )
    return json_response(body, 201)


async def _added(jobs: Sequence[JobRequest], add: Callable[[], Awaitable[_T]]) -> _T:
    """``add()`` the decoded ``jobs``; after a large add, hand the memory it
    freed back to the system (``engine.server.heap``)."""
    large = len(jobs) >= heap.LARGE_ADD
    result = await add()
    if large:
        heap.release_freed_memory()
    return result


class _Api:
    """The route handlers, bound to one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def create_batch(self, request: Request) -> Response:
        body = api.decode_body(await request.body(), api.CreateBatch)
        jobs = job_requests(body.jobs)
        requested_id, type, options = body.batch_id, body.type, body.options
        del body  # as in ``add_jobs``
        batch_id, result = await _added(
            jobs, lambda: self._engine.create_batch(requested_id, type, jobs, options)
        )
        return _enqueued(batch_id, result)

    async def add_jobs(self, request: Request) -> Response:
        # The decoded body is dropped once its jobs are requests: a large
        # add never holds both while the store writes it.
        batch_id = request.path_params["batchId"]
        jobs = job_requests(api.decode_body(await request.body(), api.AddJobs).jobs)
        result = await _added(jobs, lambda: self._engine.add_jobs(batch_id, jobs))
        return _enqueued(batch_id, result)

    async def list_batches(self, request: Request) -> Response:
        records = await self._engine.list_batches()
        views = tuple(self._view(record) for record in records)
        return json_response(api.BatchList(batches=views))

    async def get_batch(self, request: Request) -> Response:
        return json_response(await self._batch(request.path_params["batchId"]))

    async def _batch(self, batch_id: str) -> api.BatchView:
        return self._view(await self._engine.get_batch(batch_id))

    def _view(self, record: BatchRecord) -> api.BatchView:
        engine = self._engine
        return batch_view(
            record,
            runner=engine.runner_of(record),
            child=engine.jobs.child_of(record.batch_id),
            eta_seconds=engine.eta_seconds(record.batch_id),
        )

    async def delete_batch(self, request: Request) -> Response:
        await self._engine.delete_batch(request.path_params["batchId"])
        return Response(status_code=204)

    async def list_jobs(self, request: Request) -> Response:
        batch_id = request.path_params["batchId"]
        params = request.query_params
        state, limit = queries.STATE.parse(params), queries.LIMIT.parse(params)
        cursor = queries.CURSOR.parse(params)
        await self._engine.get_batch(batch_id)
        page = await self._engine.list_jobs(
            batch_id, state=state, limit=limit or queries.DEFAULT_PAGE, cursor=cursor
        )
        jobs = tuple(job_view(record) for record in page.jobs)
        return json_response(api.JobList(jobs=jobs, next_cursor=page.next_cursor))

    async def retry(self, request: Request) -> Response:
        requeued = await self._engine.retry(request.path_params["batchId"])
        return json_response(api.Requeued(requeued=requeued))

    async def cancel(self, request: Request) -> Response:
        batch_id = request.path_params["batchId"]
        await self._engine.get_batch(batch_id)
        await self._engine.cancel(batch_id)
        return json_response(await self._batch(batch_id))

    async def process_all(self, request: Request) -> Response:
        batch_id = request.path_params["batchId"]
        status, name = _START_ANSWERS[await self._engine.start(batch_id)]
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 429 else None
        return json_response(api.ProcessResult(status=name, batch_id=batch_id), status, headers)

    async def pause(self, request: Request) -> Response:
        self._engine.pause()
        return await self.status(request)

    async def resume(self, request: Request) -> Response:
        self._engine.resume()
        return await self.status(request)

    async def status(self, request: Request) -> Response:
        engines = await self._engine.engines()
        return json_response(status_view(self._engine.status(), engines))

    async def schedules(self, request: Request) -> Response:
        statuses = await self._engine.scheduler.statuses()
        return json_response(ScheduleList(schedules=tuple(map(schedule_view, statuses))))

    async def types(self, request: Request) -> Response:
        return json_response(api.TypeList(types=tuple(self._engine.registry.names())))

    async def health(self, request: Request) -> Response:
        engine = self._engine
        store_ok = await engine.store_healthy()
        queue = 0
        if store_ok:
            try:
                queue = await engine.queue_length()
            except StoreError:  # a store failing is what health reports, not an error
                store_ok = False
        degraded = not store_ok or engine.is_shutting_down
        view = api.HealthView(
            status="degraded" if degraded else "ok",
            services={
                "store": "connected" if store_ok else "unavailable",
                "engine": "shutting-down" if engine.is_shutting_down else "running",
            },
            metrics=api.HealthMetrics(
                queue_length=queue, active_workers=engine.status().active_batches
            ),
        )
        return json_response(view, 503 if degraded else 200)


def _by_method(handlers: Mapping[str, Endpoint]) -> Endpoint:
    # One route per path, so a 405 lists every method the path takes in Allow.
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


def api_routes(engine: Engine) -> list[BaseRoute]:
    """Every JSON route of the API, bound to ``engine``."""
    a = _Api(engine)
    batch = "/api/batches/{batchId}"
    table: dict[str, Mapping[str, Endpoint]] = {
        "/api/batches": {"GET": a.list_batches, "POST": a.create_batch},
        batch: {"GET": a.get_batch, "DELETE": a.delete_batch},
        f"{batch}/jobs": {"GET": a.list_jobs, "POST": a.add_jobs},
        f"{batch}/retry": {"POST": a.retry},
        f"{batch}/cancel": {"POST": a.cancel},
        "/api/jobs/process/all/{batchId}": {"POST": a.process_all},
        "/api/pause": {"POST": a.pause},
        "/api/resume": {"POST": a.resume},
        "/api/status": {"GET": a.status},
        "/api/schedules": {"GET": a.schedules},
        "/api/types": {"GET": a.types},
        "/health": {"GET": a.health},
        **job_routes(engine),
    }
    return [
        Route(path, _by_method(handlers), methods=list(handlers))
        for path, handlers in table.items()
    ]
