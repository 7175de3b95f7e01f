"""What every workload and peer gets: the sizes, a work directory, where the
store and Redis are, and a way to say what is happening."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from bench.redis_keys import clear_batchyard_keys, is_redis
from bench.sizes import Sizes

__all__ = ["Context"]


@attrs.frozen(kw_only=True)
class Context:
    """One bench run's shared settings."""

    sizes: Sizes
    workdir: Path
    #: "sqlite" (a fresh file per workload) or a store URL used as it is; on
    #: Redis, batchyard's keys are deleted before each workload (``fresh_store``).
    store: str
    #: The peers' Redis database, which they empty (FLUSHDB) before each run.
    redis_url: str
    #: The Redis store W8 (scale-out) runs on when ``store`` is not Redis.
    scale_out_store: str
    quick: bool
    say: Callable[[str], None] = print

    def store_url(self, name: str) -> str:
        """The store a workload's engine uses: a file of its own under SQLite."""
        if self.store == "sqlite":
            return f"sqlite:///{self.workdir / f'{name}.db'}"
        return self.store

    async def fresh_store(self) -> None:
        """Make the store empty of batchyard's data before a workload (or a
        run of one): under SQLite each workload's file is new anyway; on Redis
        batchyard's keys are deleted, and nothing else of the database.

        Cancellation: may have partially happened.
        """
        if is_redis(self.store):
            await clear_batchyard_keys(self.store)

    @property
    def scale_out_redis(self) -> str:
        """The Redis store of W8: ``store`` when that is Redis, else
        ``scale_out_store``."""
        return self.store if is_redis(self.store) else self.scale_out_store

    @property
    def store_name(self) -> str:
        """The store in words, for configuration strings."""
        if self.store == "sqlite":
            return "SQLite"
        return "Redis" if is_redis(self.store) else self.store.split("://", 1)[0]

    def server_env(self, name: str, **variables: str | int | float) -> dict[str, str]:
        """Environment variables of a served engine for workload ``name``."""
        environment = {"BATCHYARD_STORE": self.store_url(name)}
        environment.update({key: str(value) for key, value in variables.items()})
        return environment
