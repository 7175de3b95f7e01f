"""What every workload and peer gets: the sizes, a work directory, where the
store and Redis are, and a way to say what is happening."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from bench.sizes import Sizes

__all__ = ["Context"]


@attrs.frozen(kw_only=True)
class Context:
    """One bench run's shared settings."""

    sizes: Sizes
    workdir: Path
    #: "sqlite" (a fresh file per workload) or a store URL used as it is.
    store: str
    redis_url: str
    quick: bool
    say: Callable[[str], None] = print

    def store_url(self, name: str) -> str:
        """The store a workload's engine uses: a file of its own under SQLite."""
        if self.store == "sqlite":
            return f"sqlite:///{self.workdir / f'{name}.db'}"
        return self.store

    @property
    def store_name(self) -> str:
        """The store in words, for configuration strings."""
        return "SQLite" if self.store == "sqlite" else self.store.split("://", 1)[0]

    def server_env(self, name: str, **variables: str | int | float) -> dict[str, str]:
        """Environment variables of a served engine for workload ``name``."""
        environment = {"BATCHYARD_STORE": self.store_url(name)}
        environment.update({key: str(value) for key, value in variables.items()})
        return environment
