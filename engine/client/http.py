"""The HTTP client of a batchyard server, as the CLI uses it.

Design notes
------------
``BatchyardClient`` has one method per API route the command line needs.
Request bodies are built from the ``protocols.api`` classes and answers are
decoded with them, just as strictly as the server decodes requests, so a
server that breaks the contract is noticed here and not three calls later.

Every failure, whatever layer raised it, reaches the caller as the one
``ClientError`` of ``engine.client.errors``, translated there and only there.

Paths are built with every batch id percent-encoded as one segment, so an id
can never reach another route. The WebSocket side, ``engine.client.watch``,
uses this client's address and token: the token goes in the WebSocket URL as
``?token=`` (what browsers can send) and in the header too (what the
contract requires every server to accept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import attrs
import httpx

from engine.client.errors import ClientError, error_from_answer, translate_errors
from protocols import api
from protocols.job_api import JobStateView

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_URL",
    "READ_TIMEOUT",
    "BatchyardClient",
    "ClientError",
    "ServerAddress",
    "StartOutcome",
]

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"

#: A server that is up accepts a connection in milliseconds; one that is
#: down should be reported before the person at the terminal wonders. Reads
#: get longer: creating a batch of many thousand jobs is one store commit
#: that a busy disk may take seconds over.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0


@attrs.frozen(kw_only=True)
class StartOutcome:
    """What ``POST /api/jobs/process/all/{batchId}`` answered.

    ``retry_after`` is the server's ``Retry-After`` in whole seconds when the
    status is ``capacity-reached``, else ``None``.
    """

    status: api.ProcessStatus
    batch_id: str
    retry_after: int | None = None


@attrs.frozen(kw_only=True)
class ServerAddress:
    """Where a server listens, taken apart: its base URL is ``http[s]://host:port/prefix``."""

    host: str
    port: int
    tls: bool
    prefix: str


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


class BatchyardClient:
    """One server's API. Use it as ``async with BatchyardClient(url) as client``.

    Args:
        base_url: where the server listens, with any path prefix it is
            mounted under.
        token: sent as ``Authorization: Bearer TOKEN`` when given.

    Raises:
        ClientError: ``base_url`` is not an ``http://`` or ``https://`` URL
            with a host.
    """

    def __init__(self, base_url: str = DEFAULT_URL, *, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.address = _address(self.base_url)
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        )

    async def __aenter__(self) -> BatchyardClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled HTTP connections.

        Cancellation: the connections are closed all the same.
        """
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, body: Any = None, *, ok: Sequence[int] = (200,)
    ) -> httpx.Response:
        content = None if body is None else api.encode_body(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        with translate_errors(self.base_url):
            response = await self._http.request(method, path, content=content, headers=headers)
        if response.status_code not in ok:
            raise error_from_answer(response.status_code, response.content, response.reason_phrase)
        return response

    def _decode(self, response: httpx.Response, cls: type[T]) -> T:
        with translate_errors(self.base_url):
            return api.decode_body(response.content, cls)

    async def create_batch(
        self,
        type: str,
        jobs: Sequence[api.JobSpec],
        *,
        batch_id: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> api.EnqueueResult:
        """Create a batch whose jobs default to ``type``.

        Args:
            type: the batch's job type.
            jobs: its first jobs (may be empty).
            batch_id: its id; the server picks one when ``None``.
            options: per-batch options, passed through.

        Returns:
            The batch id and how many jobs were enqueued or were duplicates.

        Raises:
            ClientError: the server is unreachable or refused (409 when the
                id is taken, 400 for an unknown job type).

        Cancellation: may have partially happened: the server may have
        created the batch.
        """
        body = api.CreateBatch(
            type=type, jobs=tuple(jobs), batch_id=batch_id, options=options or {}
        )
        response = await self._request("POST", "api/batches", body, ok=(201,))
        return self._decode(response, api.EnqueueResult)

    async def add_jobs(self, batch_id: str, jobs: Sequence[api.JobSpec]) -> api.EnqueueResult:
        """Add jobs to an existing batch.

        Args:
            batch_id: the batch.
            jobs: the jobs; those without a type take the batch's.

        Returns:
            How many jobs were enqueued or were duplicates.

        Raises:
            ClientError: unreachable, or refused (404 unknown batch).

        Cancellation: may have partially happened: the jobs may be enqueued.
        """
        path = f"api/batches/{_segment(batch_id)}/jobs"
        response = await self._request("POST", path, api.AddJobs(jobs=tuple(jobs)), ok=(201,))
        return self._decode(response, api.EnqueueResult)

    async def start(self, batch_id: str) -> StartOutcome:
        """Process every pending job of a batch.

        Args:
            batch_id: the batch.

        Returns:
            ``started``, ``already-running``, or ``capacity-reached`` with
            the server's ``retry_after``.

        Raises:
            ClientError: unreachable, or refused (404 unknown batch, 503
                shutting down, 500 the child did not start).

        Cancellation: may have partially happened: the run may have started.
        """
        path = f"api/jobs/process/all/{_segment(batch_id)}"
        response = await self._request("POST", path, ok=(200, 202, 429))
        result = self._decode(response, api.ProcessResult)
        retry_after = _retry_after(response) if response.status_code == 429 else None
        return StartOutcome(
            status=result.status, batch_id=result.batch_id, retry_after=retry_after
        )

    async def status(self) -> api.StatusView:
        """What the engine is doing.

        Returns:
            Running batches, capacity, paused and shutting-down flags.

        Raises:
            ClientError: unreachable, or refused (401 wrong token).

        Cancellation: atomic: nothing happened.
        """
        return self._decode(await self._request("GET", "api/status"), api.StatusView)

    async def get_batch(self, batch_id: str) -> api.BatchView:
        """One batch with its job counts.

        Args:
            batch_id: the batch.

        Returns:
            The batch as the server sees it now.

        Raises:
            ClientError: unreachable, or refused (404 unknown batch).

        Cancellation: atomic: nothing happened.
        """
        response = await self._request("GET", f"api/batches/{_segment(batch_id)}")
        return self._decode(response, api.BatchView)

    async def list_batches(self) -> tuple[api.BatchView, ...]:
        """Every batch with its job counts.

        Returns:
            The batches, in the server's order.

        Raises:
            ClientError: unreachable, or refused.

        Cancellation: atomic: nothing happened.
        """
        return self._decode(await self._request("GET", "api/batches"), api.BatchList).batches

    async def retry(self, batch_id: str) -> int:
        """Put a batch's failed jobs back to pending.

        Args:
            batch_id: the batch.

        Returns:
            How many jobs were requeued.

        Raises:
            ClientError: unreachable, or refused (404 unknown batch).

        Cancellation: may have partially happened: the jobs may be requeued.
        """
        response = await self._request("POST", f"api/batches/{_segment(batch_id)}/retry")
        return self._decode(response, api.Requeued).requeued

    async def cancel(self, batch_id: str) -> None:
        """Stop a running batch; its in-flight jobs go back to pending.

        Args:
            batch_id: the batch.

        Raises:
            ClientError: unreachable, or refused (409 not running, 404 unknown).

        Cancellation: may have partially happened: the run may be stopping.
        """
        await self._request("POST", f"api/batches/{_segment(batch_id)}/cancel")

    async def get_job(self, job_id: str) -> api.JobView:
        """One job by id.

        Raises:
            ClientError: unreachable, or refused (404 unknown job).

        Cancellation: atomic: nothing happened.
        """
        response = await self._request("GET", f"api/jobs/{_segment(job_id)}")
        return self._decode(response, api.JobView)

    async def cancel_job(self, job_id: str) -> JobStateView:
        """Cancel one job: a pending one fails ``cancelled`` at once, an
        active one is stopped in its child (the answer comes once it ended,
        or after the server's grace).

        Raises:
            ClientError: unreachable, or refused (409 finished already or
                active on another engine, 404 unknown job).

        Cancellation: may have partially happened: the job may be cancelled.
        """
        response = await self._request("POST", f"api/jobs/{_segment(job_id)}/cancel")
        return self._decode(response, JobStateView)

    async def retry_job(self, job_id: str) -> JobStateView:
        """Put one failed job back to pending.

        Raises:
            ClientError: unreachable, or refused (409 not failed, 404 unknown job).

        Cancellation: may have partially happened: the job may be pending.
        """
        response = await self._request("POST", f"api/jobs/{_segment(job_id)}/retry")
        return self._decode(response, JobStateView)

    async def pause(self) -> None:
        """Stop handing out jobs; running children finish what they hold.

        Raises:
            ClientError: unreachable, or refused.

        Cancellation: may have partially happened: the engine may be paused.
        """
        await self._request("POST", "api/pause")

    async def resume(self) -> None:
        """Hand out jobs again after ``pause``.

        Raises:
            ClientError: unreachable, or refused.

        Cancellation: may have partially happened: the engine may be resumed.
        """
        await self._request("POST", "api/resume")


def _address(url: str) -> ServerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"invalid server URL {url!r}: expected http://HOST[:PORT]")
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as exc:
        raise ClientError(f"invalid server URL {url!r}: {exc}") from None
    return ServerAddress(host=parts.hostname, port=port, tls=tls, prefix=parts.path.rstrip("/"))


def _segment(value: str) -> str:
    return quote(value, safe="")
