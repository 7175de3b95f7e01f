"""How every failed request becomes the contract's error body.

Design notes
------------
``error_response`` is the one place where an error gets its HTTP status:
routes and middleware raise, they never build an error response. The table
``_BY_ERROR`` maps each family the engine raises on purpose to a status and
a stable machine code; lookups walk the exception's MRO, so a subclass row
(``BatchExists``) wins over its family's (``Conflict``).

Three families come from outside the engine and are translated here too:

* ``InvalidBody`` (the body decoder's verdict, with wire paths) → 400;
* ``RequestError``, raised by this package for what is wrong with the request
  itself rather than its body: a bad query parameter, a missing token, a body
  over the size limit;
* Starlette's ``HTTPException``, which its router raises for an unknown path
  (404) or a method a path does not take (405, with ``Allow``).

What is in none of them is a bug, and the catch-all middleware answers it
with 500; a store that cannot be reached is not a bug (503).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response

from engine.errors import (
    BatchExists,
    BatchNotFound,
    BatchNotRunning,
    BatchRunning,
    ChildCrashed,
    Conflict,
    JobError,
    JobNotFound,
    JobStateConflict,
    NotFound,
    ShuttingDown,
    StoreError,
    StoreUnavailable,
    UnknownJobType,
)
from protocols.api import ErrorBody, ErrorDetail, encode_body
from protocols.errors import InvalidBody

__all__ = [
    "HANDLED",
    "RequestError",
    "error_response",
    "handle_error",
    "internal_error_response",
]

JSON = "application/json"

_BY_ERROR: Mapping[type[Exception], tuple[int, str]] = {
    BatchNotFound: (404, "batch-not-found"),
    JobNotFound: (404, "job-not-found"),
    NotFound: (404, "not-found"),
    BatchExists: (409, "batch-exists"),
    BatchRunning: (409, "batch-running"),
    BatchNotRunning: (409, "batch-not-running"),
    JobStateConflict: (409, "job-state"),
    Conflict: (409, "conflict"),
    UnknownJobType: (400, "unknown-job-type"),
    JobError: (400, "invalid-job"),
    ShuttingDown: (503, "shutting-down"),
    StoreUnavailable: (503, "store-unavailable"),
    StoreError: (503, "store-error"),
    ChildCrashed: (500, "child-failed"),
    InvalidBody: (400, "invalid-body"),
}

_BY_STATUS = {404: "not-found", 405: "method-not-allowed"}


class RequestError(Exception):
    """The request itself is unacceptable (not its body's shape).

    Args:
        status: the HTTP status to answer.
        code: the stable machine code of the error body.
        message: what is wrong, for people.
        headers: extra response headers (``WWW-Authenticate``).
    """

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


#: Every exception class ``error_response`` knows; anything else is a bug.
HANDLED: tuple[type[Exception], ...] = (*_BY_ERROR, RequestError, HTTPException)


def _body(status: int, code: str, message: str, headers: Mapping[str, str] | None) -> Response:
    body = encode_body(ErrorBody(error=ErrorDetail(code=code, message=message)))
    return Response(body, status_code=status, headers=headers, media_type=JSON)


def _route_error(exc: HTTPException, conn: HTTPConnection | None) -> Response:
    code = _BY_STATUS.get(exc.status_code, "http-error")
    message = exc.detail
    if conn is not None and exc.status_code == 404:
        message = f"no route for {conn.url.path}"
    elif conn is not None and exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{conn.scope.get('method')} is not allowed on {conn.url.path}; use {allowed}"
    return _body(exc.status_code, code, message, exc.headers)


def error_response(exc: Exception, conn: HTTPConnection | None = None) -> Response:
    """The response for a handled error (see ``HANDLED``).

    Args:
        exc: the error.
        conn: the request, when known (it makes 404 and 405 messages precise).

    Raises:
        TypeError: ``exc`` is not a handled error, which is a bug of the caller.
    """
    if isinstance(exc, RequestError):
        return _body(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, HTTPException):
        return _route_error(exc, conn)
    for cls in type(exc).__mro__:
        if cls in _BY_ERROR:
            status, code = _BY_ERROR[cls]
            return _body(status, code, str(exc), None)
    raise TypeError(f"{type(exc).__name__} is not an error the API answers") from exc


async def handle_error(conn: HTTPConnection, exc: Exception) -> Response:
    """Starlette's exception-handler signature around ``error_response``.

    Cancellation: atomic (nothing is awaited).
    """
    return error_response(exc, conn)


def internal_error_response() -> Response:
    """The 500 answer of a bug; the details go to the log, not to the client."""
    return _body(500, "internal", "internal server error", None)
