"""The HTTP and WebSocket client of a batchyard server, as the CLI uses it.

Design notes
------------
``BatchyardClient`` has one method per API route the command line needs.
Request bodies are built from the ``protocols.api`` classes and answers are
decoded with them, just as strictly as the server decodes requests, so a
server that breaks the contract is noticed here and not three calls later.

Every foreign failure becomes a ``ClientError`` in ``translate_errors`` (and
the two helpers it calls) and nowhere else: httpx's transport errors, the
server's ``{"error": {"code", "message"}}`` bodies, trio-websocket's refused
handshakes and close codes, sockets that will not connect, answers and
frames that do not parse. Each message is one line a person can act on
(``cannot reach http://127.0.0.1:8000 (connection refused)``, ``409
conflict: batch 'x' already exists``); ``transient`` says whether trying
again later may help, and ``close_code`` what a WebSocket close meant, which
is all ``engine.watch`` needs to decide between reconnecting and stopping.

Paths are built with every batch id percent-encoded as one segment, so an id
can never reach another route. The WebSocket URL carries the token as
``?token=`` (what browsers can send) and the header carries it too (what the
contract requires every server to accept).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import attrs
import httpx
import trio
import trio_websocket

from engine.errors import EngineError
from protocols import api
from protocols.errors import ProtocolError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_URL",
    "GOING_AWAY",
    "POLICY_VIOLATION",
    "READ_TIMEOUT",
    "BatchyardClient",
    "ClientError",
    "ServerAddress",
    "StartOutcome",
    "translate_errors",
]

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"

#: A server that is up accepts a connection in milliseconds; one that is
#: down should be reported before the person at the terminal wonders. Reads
#: get longer: creating a batch of many thousand jobs is one store commit
#: that a busy disk may take seconds over.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0

#: WebSocket close codes with a meaning here (RFC 6455 section 7.4.1).
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
_PROTOCOL_FAULTS = frozenset({1002, 1003, 1007, 1009, 1010})


# --- the one error -------------------------------------------------------------


class ClientError(EngineError):
    """A request to the server failed; ``str(exc)`` is one line for people.

    Attributes:
        status: the HTTP status the server answered, if it answered one.
        code: the server's machine error code (``"conflict"``), if it sent one.
        close_code: the WebSocket close code, if the server closed a watch.
        transient: whether the same request may succeed later (the server
            was unreachable, overloaded or restarting).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        close_code: int | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.close_code = close_code
        self.transient = transient


_TIMEOUTS = (TimeoutError, trio.TooSlowError, trio_websocket.ConnectionTimeout)


def _leaf_errors(exc: BaseException) -> Iterator[BaseException]:
    """The innermost causes of ``exc``, through exception groups and chains."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaf_errors(inner)
        return
    cause = exc.__cause__ or exc.__context__
    if cause is None:
        yield exc
    else:
        yield from _leaf_errors(cause)


def _why_unreachable(exc: BaseException) -> str:
    """``connection refused``, ``unknown host``, ... for a failed connect."""
    leaves = list(_leaf_errors(exc))
    if leaves and all(isinstance(leaf, ConnectionRefusedError) for leaf in leaves):
        return "connection refused"
    if any(isinstance(leaf, socket.gaierror) for leaf in leaves):
        return "unknown host"
    if any(isinstance(leaf, _TIMEOUTS) for leaf in leaves):
        return "timed out"
    first = leaves[0] if leaves else exc
    if isinstance(first, OSError) and first.strerror:
        return first.strerror.lower()
    return str(first) or type(first).__name__


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Turn every foreign error raised inside into a ``ClientError``.

    ``where`` is the server as people know it: the base URL, never a URL
    that carries the token. An exception group holding one error (a
    connection's reader task failed inside its nursery) counts as that error.
    """
    try:
        yield
    except BaseException as exc:
        error = _client_error(_sole(exc), where)
        if error is None:
            raise
        raise error from exc


def _sole(exc: BaseException) -> BaseException:
    """The one error ``exc`` wraps, cancellations aside; else ``exc`` itself."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    _, rest = exc.split(trio.Cancelled)
    inner = [] if rest is None else rest.exceptions
    return _sole(inner[0]) if len(inner) == 1 else exc


def _client_error(exc: BaseException, where: str) -> ClientError | None:
    """What ``exc`` means to a client of the server at ``where``; ``None``: not ours."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return ClientError(f"{where} did not answer in time", transient=True)
    if isinstance(exc, trio_websocket.ConnectionRejected):
        return _error_from_status(exc.status_code, exc.body or b"", "")
    if isinstance(exc, _UNREACHABLE):
        return ClientError(f"cannot reach {where} ({_why_unreachable(exc)})", transient=True)
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return ClientError(f"invalid server URL {where!r}: {exc}")
    if isinstance(exc, httpx.TransportError):
        why = _why_unreachable(exc)
        return ClientError(f"the connection to {where} broke ({why})", transient=True)
    if isinstance(exc, trio_websocket.ConnectionClosed):
        return _error_from_close(exc.reason, where)
    if isinstance(exc, ProtocolError):
        return ClientError(f"unexpected answer from {where}: {exc}")
    return None


#: Failures to connect at all, whichever layer saw them.
_UNREACHABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    trio_websocket.HandshakeError,
    trio.TooSlowError,
    OSError,
)


def _error_from_status(status: int, body: bytes, reason: str) -> ClientError:
    """The error an HTTP error answer stands for, from its JSON error body if any."""
    try:
        detail = api.decode_body(body, api.ErrorBody).error
    except ProtocolError:
        phrase = reason or _phrase(status)
        return ClientError(f"{status} {phrase}".strip(), status=status, transient=status >= 500)
    return ClientError(
        f"{status} {detail.code}: {detail.message}",
        status=status,
        code=detail.code,
        transient=status >= 500,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _error_from_close(reason: trio_websocket.CloseReason | None, where: str) -> ClientError:
    code = 1006 if reason is None else reason.code
    said = f": {reason.reason}" if reason is not None and reason.reason else ""
    if code == GOING_AWAY:
        message = f"the server at {where} is shutting down (close {code}{said})"
    elif code == POLICY_VIOLATION:
        message = f"{where} refused the watch: unauthorized (close {code}{said})"
    elif code in _PROTOCOL_FAULTS:
        message = f"{where} closed the watch: protocol error (close {code}{said})"
    else:
        message = f"the watch connection to {where} dropped (close {code}{said})"
    transient = code not in _PROTOCOL_FAULTS and code not in (GOING_AWAY, POLICY_VIOLATION)
    return ClientError(message, close_code=code, transient=transient)


# --- HTTP ----------------------------------------------------------------------


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
            raise _error_from_status(
                response.status_code, response.content, response.reason_phrase
            )
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

    # --- WebSocket ------------------------------------------------------------


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
