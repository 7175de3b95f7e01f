"""The JSON routes on one job by id: ``GET /api/jobs/{jobId}``, and its
``cancel`` and ``retry``.

Each decodes nothing but the id, makes one engine call
(``Engine.jobs``, ``engine.core.job_control``) and encodes the answer; an
unknown job is 404 and a job in the wrong state 409, through
``engine.server.errors``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

from engine.core.engine import Engine
from engine.server.views import job_view, json_response
from protocols.job_api import JobStateView

__all__ = ["job_routes"]

Endpoint = Callable[[Request], Awaitable[Response]]


def job_routes(engine: Engine) -> Mapping[str, Mapping[str, Endpoint]]:
    """The per-job routes, path → method → handler, bound to ``engine``."""

    async def get_job(request: Request) -> Response:
        return json_response(job_view(await engine.jobs.get(request.path_params["jobId"])))

    async def cancel_job(request: Request) -> Response:
        job = await engine.jobs.cancel(request.path_params["jobId"])
        return json_response(JobStateView(job_id=job.job_id, state=job.state))

    async def retry_job(request: Request) -> Response:
        job = await engine.jobs.retry(request.path_params["jobId"])
        return json_response(JobStateView(job_id=job.job_id, state=job.state))

    return {
        "/api/jobs/{jobId}": {"GET": get_job},
        "/api/jobs/{jobId}/cancel": {"POST": cancel_job},
        "/api/jobs/{jobId}/retry": {"POST": retry_job},
    }
