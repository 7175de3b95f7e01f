"""The one error of the client, and the one place foreign errors become it.

Design notes
------------
Every failure a client of the server can meet becomes a ``ClientError`` in
``translate_errors`` (and the helpers it calls) and nowhere else: httpx's
transport errors, the server's ``{"error": {"code", "message"}}`` bodies,
trio-websocket's refused handshakes and close codes, sockets that will not
connect, answers and frames that do not parse. Each message is one line a
person can act on (``cannot reach http://127.0.0.1:8000 (connection
refused)``, ``409 batch-exists: batch 'x' already exists``); ``transient``
says whether trying again later may help, and ``close_code`` what a
WebSocket close meant, which is all ``engine.client.watch`` needs to decide between
reconnecting and stopping.

A connection's reader task runs in a nursery, so its failure arrives wrapped
in an exception group; a group holding a single error (cancellations aside)
is translated as that error.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from http import HTTPStatus

import httpx
import trio
import trio_websocket

from protocols import api
from protocols.errors import ProtocolError
from protocols.events import CloseCode

__all__ = [
    "ClientError",
    "error_from_answer",
    "translate_errors",
]

#: Close codes that say one side broke the WebSocket protocol: trying again
#: would meet the same refusal.
_PROTOCOL_FAULTS = frozenset(
    {
        CloseCode.PROTOCOL_ERROR,
        CloseCode.UNSUPPORTED_DATA,
        CloseCode.INVALID_PAYLOAD,
        CloseCode.MESSAGE_TOO_BIG,
        CloseCode.MANDATORY_EXTENSION,
    }
)


# --- the one error -------------------------------------------------------------


class ClientError(Exception):
    """A request to the server failed; ``str(exc)`` is one line for people.

    The client's own root: the client imports nothing of the engine, so a
    program that only talks to a server needs none of it.

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
        return error_from_answer(exc.status_code, exc.body or b"", "")
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


def error_from_answer(status: int, body: bytes, reason: str) -> ClientError:
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
    code = CloseCode.ABNORMAL_CLOSURE if reason is None else reason.code
    said = f": {reason.reason}" if reason is not None and reason.reason else ""
    if code == CloseCode.GOING_AWAY:
        message = f"the server at {where} is shutting down (close {code}{said})"
    elif code == CloseCode.POLICY_VIOLATION:
        message = f"{where} refused the watch: unauthorized (close {code}{said})"
    elif code in _PROTOCOL_FAULTS:
        message = f"{where} closed the watch: protocol error (close {code}{said})"
    else:
        message = f"the watch connection to {where} dropped (close {code}{said})"
    transient = code not in _PROTOCOL_FAULTS and code not in (
        CloseCode.GOING_AWAY,
        CloseCode.POLICY_VIOLATION,
    )
    return ClientError(message, close_code=code, transient=transient)
