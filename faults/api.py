"""The few API calls the scenarios make, as a user's script would make them:
plain JSON over HTTP, each answer checked for its status."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import trio

__all__ = ["Api", "ApiError", "jobs_of"]


class ApiError(Exception):
    """An answer the scenario did not expect: its status and body."""


def jobs_of(type: str, payloads: list[Any]) -> list[dict[str, Any]]:
    """A job list for ``POST /api/batches``: one job of ``type`` per payload."""
    return [{"type": type, "payload": payload} for payload in payloads]


class Api:
    """A client of one engine's API at ``url``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with trio.CancelScope(shield=True):
            await self._http.aclose()

    async def call(self, method: str, path: str, *ok: int, **kwargs: Any) -> httpx.Response:
        """One request; ``ApiError`` unless its status is one of ``ok``."""
        response = await self._http.request(method, path, **kwargs)
        if ok and response.status_code not in ok:
            raise ApiError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response

    async def create(self, batch_id: str, jobs: list[dict[str, Any]]) -> None:
        body = {"batchId": batch_id, "type": "noop", "jobs": jobs}
        await self.call("POST", "/api/batches", 201, json=body)

    async def start(self, batch_id: str) -> int:
        """``process/all``: its status (200 started, 202 running, 429 full)."""
        response = await self.call("POST", f"/api/jobs/process/all/{batch_id}", 200, 202, 429)
        return response.status_code

    async def batch(self, batch_id: str) -> dict[str, Any]:
        response = await self.call("GET", f"/api/batches/{batch_id}", 200)
        body: dict[str, Any] = response.json()
        return body

    async def wait_idle(self, batch_id: str, timeout: float, poll: float = 0.05) -> dict[str, Any]:
        """The batch once it runs nowhere; ``TimeoutError`` after ``timeout``."""
        with trio.fail_after(timeout):
            while True:
                view = await self.batch(batch_id)
                if not view["running"]:
                    return view
                await trio.sleep(poll)

    async def jobs(self, batch_id: str, state: str | None = None) -> list[dict[str, Any]]:
        """Every job of the batch (in ``state``), page by page."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if state:
                params["state"] = state
            if cursor:
                params["cursor"] = cursor
            response = await self.call("GET", f"/api/batches/{batch_id}/jobs", 200, params=params)
            page = response.json()
            found += page["jobs"]
            cursor = page["nextCursor"]
            if cursor is None:
                return found

    async def ledger(self, batch_id: str) -> tuple[Counter[str], int]:
        """How many jobs of the batch are in each state, read state by state,
        and how many job ids turn up in more than one state."""
        states: dict[str, str] = {}
        counts: Counter[str] = Counter()
        doubled = 0
        for state in ("pending", "active", "completed", "failed"):
            for job in await self.jobs(batch_id, state):
                doubled += job["jobId"] in states
                states[job["jobId"]] = state
                counts[state] += 1
        return counts, doubled

    async def health(self) -> tuple[int, dict[str, Any]]:
        response = await self.call("GET", "/health")
        body: dict[str, Any] = response.json()
        return response.status_code, body
