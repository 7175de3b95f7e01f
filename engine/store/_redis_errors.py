"""Where the Redis store's foreign errors become ``StoreError``s, and its URL is checked."""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator

import coredis.exceptions

from engine.errors import ConfigError, StoreError, StoreUnavailable

__all__ = ["checked_location", "sole_exception", "translate_redis_errors"]

#: Errors meaning that Redis cannot do the work right now; other Redis errors
#: (a refused command) mean a bug and become a plain ``StoreError``.
_UNAVAILABLE = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.ReadOnlyError,
    coredis.exceptions.AuthenticationError,
    TimeoutError,
    OSError,
)


@contextlib.contextmanager
def translate_redis_errors(where: str) -> Iterator[None]:
    """The one place where coredis's errors become ``StoreError``s."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"redis store {where}: {exc or type(exc).__name__}") from exc
    except coredis.exceptions.RedisError as exc:
        if str(exc).startswith(("OOM", "BUSY", "LOADING")):
            raise StoreUnavailable(f"redis store {where}: {exc}") from exc
        raise StoreError(f"redis store {where}: {exc}") from exc


def checked_location(url: str) -> str:
    """``HOST:PORT/DB`` of a Redis URL, checked; never the password."""
    parts = urllib.parse.urlsplit(url)
    try:
        port, db = parts.port or 6379, int(parts.path.removeprefix("/") or 0)
    except ValueError:
        port, db = -1, -1
    if not parts.hostname or port < 0 or db < 0 or parts.query or parts.fragment:
        raise ConfigError(
            f"store URL {parts.scheme}://{parts.hostname}: expected redis://HOST:PORT/DB"
        )
    return f"{parts.hostname}:{port}/{db}"


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception in a group of one (possibly nested), or None."""
    while len(group.exceptions) == 1:
        (inner,) = group.exceptions
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return None
