"""batchyard's keys in a Redis database, and nothing else of it.

The bench runs batchyard on a Redis database that other programs may share
(``REDIS_STORE``, DB 9 of the local server, unless told otherwise): before
a workload it deletes only the keys under the store's prefix, never the
whole database (no ``FLUSHDB``, no ``FLUSHALL``).
"""

from __future__ import annotations

import coredis

from engine.errors import ConfigError, StoreUnavailable
from engine.store import open_store
from engine.store._redis_layout import PREFIX

__all__ = ["REDIS_STORE", "clear_batchyard_keys", "is_redis", "why_unreachable"]

#: The bench's default Redis store: DB 9 of the local server (the peers use
#: DB 15, which they empty; other programs here use DB 0).
REDIS_STORE = "redis://127.0.0.1:6379/9"

#: Keys deleted per ``UNLINK``.
_CHUNK = 1_000
_TIMEOUT_SECONDS = 10.0


def is_redis(url: str) -> bool:
    """Whether ``url`` names a Redis store."""
    return url.partition("://")[0].lower() in ("redis", "rediss")


async def clear_batchyard_keys(url: str) -> int:
    """Delete every key under batchyard's prefix in the database ``url``
    names; how many there were. Other keys of the database are left alone.

    Cancellation: may have partially happened (some keys deleted).

    Raises:
        coredis.exceptions.RedisError: Redis cannot be reached or refused.
    """
    client: coredis.Redis[str] = coredis.Redis.from_url(
        url,
        decode_responses=True,
        connect_timeout=_TIMEOUT_SECONDS,
        stream_timeout=_TIMEOUT_SECONDS,
    )
    async with client:
        keys = [key async for key in client.scan_iter(match=f"{PREFIX}*", count=_CHUNK)]
        for first in range(0, len(keys), _CHUNK):
            await client.unlink(keys[first : first + _CHUNK])
    return len(keys)


async def why_unreachable(url: str) -> str | None:
    """None when the store ``url`` names answers, else why it does not.

    Cancellation: atomic (it only opens and closes a connection).
    """
    try:
        async with open_store(url):
            return None
    except (ConfigError, StoreUnavailable) as exc:
        return str(exc)
