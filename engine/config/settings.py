"""Engine settings: every setting declared once, and loaded from its sources.

Design notes
------------
Every setting is declared once, as a field of ``Settings``: its default, its
environment variable (if it has one), its help text, and its *kind*, one
function that turns text or a TOML value into the field's type and refuses
what is out of range (``engine.config.parsers``). The loader
(``engine.config.sources``), the field validators and ``ENV_VARIABLES`` all
derive from those declarations, so no field's variable, default or help is
written twice.

``Settings.load`` reads the defaults, the TOML file, the environment and the
command line, in that order of precedence, with profiles expanded at the
level of the source that names them (see ``engine.config.sources``).

The token and a store URL's password never appear in ``repr`` or
``describe``.

``RateLimit`` and ``TypeOverrides``, the types of the rate and per-type
fields, are importable from here as well as from their own modules.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import attrs

from engine.config import parsers
from engine.config.parsers import Kind, RateLimit, format_seconds, redact_url
from engine.config.schedules import Schedule, read_schedules
from engine.config.sources import (
    SettingSpec,
    TypeOverrides,
    from_document,
    from_environment,
    from_flags,
    read_document,
)

__all__ = [
    "ENV_VARIABLES",
    "EffectiveTypeLimits",
    "EnvVariable",
    "RateLimit",
    "Settings",
    "TypeOverrides",
]

_T = TypeVar("_T")


@attrs.frozen(kw_only=True)
class EffectiveTypeLimits:
    """The limits in force for one job type: its overrides, else the batch's settings."""

    concurrency: int
    rate_limit: RateLimit
    max_attempts: int
    #: Seconds a job of the type may run; None: no limit.
    timeout_seconds: float | None = None


@attrs.frozen(kw_only=True)
class EnvVariable:
    """One environment variable: the field it sets, its default as text (None when
    it has none), and what it means."""

    name: str
    field: str
    default: str | None
    help: str


_SPEC = "batchyard.setting"


def _setting(
    default: object,
    kind: Kind,
    env: str | None,
    help: str,
    redact: Callable[[Any], str] | None = None,
) -> Any:
    """A ``Settings`` field, with its spec in the field's metadata."""
    return attrs.field(
        default=default,
        validator=parsers.validator(kind),
        repr=redact or True,
        metadata={_SPEC: SettingSpec(kind=kind, env=env, help=help)},
    )


def _type_overrides(value: object, source: str) -> Mapping[str, TypeOverrides]:
    if not isinstance(value, Mapping) or not all(
        isinstance(name, str) and name and isinstance(limits, TypeOverrides)
        for name, limits in value.items()
    ):
        raise parsers.invalid(source, value, "is not a mapping of job type names to TypeOverrides")
    return value


def _freeze(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _schedules(value: object, source: str) -> Mapping[str, Schedule]:
    if not isinstance(value, Mapping) or not all(
        isinstance(schedule, Schedule) and schedule.name == name
        for name, schedule in value.items()
    ):
        raise parsers.invalid(source, value, "is not a mapping of names to their Schedule")
    return value


_DEFAULT_RATE = RateLimit(count=20, per_seconds=60.0)


@attrs.frozen(kw_only=True)
class Settings:
    """Every setting of one engine; ``Settings.load`` reads them from their sources.

    The help of each field is in its declaration (``ENV_VARIABLES`` shows it
    for the fields that a variable sets).
    """

    max_active_batches: int = _setting(
        1,
        parsers.whole_number(1),
        "MAX_ACTIVE_BATCHES",
        "child processes (running batches) at once",
    )
    concurrency: int = _setting(
        2,
        parsers.whole_number(1),
        "EMBEDDING_CONCURRENCY",
        "jobs in flight at once inside one batch",
    )
    batch_size: int = _setting(
        5, parsers.whole_number(1), "EMBEDDING_BATCH_SIZE", "jobs claimed from the store per fetch"
    )
    # _setting declares a field; it is not a default computed per instance.
    rate_limit: RateLimit = _setting(  # noqa: RUF009
        _DEFAULT_RATE,
        parsers.rate,
        "EMBEDDING_RATE_LIMIT",
        "job starts per minute per batch; 0 = unlimited; N/Ts = N starts per T seconds",
    )
    shutdown_grace_seconds: float = _setting(
        10.0,
        parsers.seconds(positive=False),
        "SHUTDOWN_GRACE_SECONDS",
        "seconds children get to finish in-flight jobs before SIGKILL",
    )
    batch_retries: int = _setting(
        1,
        parsers.whole_number(0),
        "BATCH_RETRIES",
        "restarts of a crashed child within one batch run",
    )
    warm_children: int = _setting(
        1, parsers.whole_number(0), "WARM_CHILDREN", "spare child processes kept started and idle"
    )
    job_max_attempts: int = _setting(
        1, parsers.whole_number(1), "JOB_MAX_ATTEMPTS", "attempts per job before it is failed"
    )
    job_backoff_seconds: float = _setting(
        1.0,
        parsers.seconds(positive=False),
        "JOB_BACKOFF_SECONDS",
        "base delay of the exponential backoff between a job's attempts",
    )
    store_url: str = _setting(
        "sqlite:///batchyard.db",
        parsers.store_url,
        "BATCHYARD_STORE",
        "store URL: sqlite:///PATH or redis://HOST:PORT/DB",
        lambda url: repr(redact_url(url)),
    )
    job_modules: tuple[str, ...] = _setting(
        (),
        parsers.module_names,
        "BATCHYARD_JOBS",
        "comma-separated modules whose job types to register",
    )
    token: str | None = _setting(
        None,
        parsers.bearer_token,
        "BATCHYARD_TOKEN",
        "bearer token that API, WebSocket and metrics requests must carry",
        parsers.redact_token,
    )
    # A lease outlives any stall of a healthy engine (a slow fsync, a long GC)
    # by a wide margin, yet a dead engine's jobs come back within a minute.
    lease_seconds: float = _setting(
        30.0,
        parsers.seconds(positive=True),
        "LEASE_SECONDS",
        "seconds after which a silent engine's runs and jobs are taken over",
    )
    auto_start: bool = _setting(
        False,
        parsers.boolean,
        "AUTO_START",
        "1: start any batch with due pending jobs that runs nowhere, within capacity",
    )
    job_timeout_seconds: float = _setting(
        0.0,
        parsers.seconds(positive=False),
        "JOB_TIMEOUT_SECONDS",
        "a job running longer fails (timed out, retried while attempts remain); 0 = no limit",
    )
    max_jobs_per_child: int = _setting(
        0,
        parsers.whole_number(0),
        "MAX_JOBS_PER_CHILD",
        "after this many jobs a batch's child is replaced by a fresh one; 0 = never",
    )
    max_child_memory_mb: int = _setting(
        0,
        parsers.whole_number(0),
        "MAX_CHILD_MEMORY_MB",
        "a child whose RSS passes this many MB is replaced by a fresh one; 0 = never",
    )
    child_silence_seconds: float = _setting(
        120.0,
        parsers.seconds(positive=False),
        "CHILD_SILENCE_SECONDS",
        "a running batch's child that says nothing this long, not even to a ping,"
        " is killed as crashed; 0 = off",
    )
    status_log_seconds: float = _setting(
        30.0,
        parsers.seconds(positive=False),
        "STATUS_LOG_SECONDS",
        "seconds between status lines (running batches, jobs per state and type); 0 = off",
    )
    log_format: str = _setting(
        "text",
        parsers.choice("text", "json"),
        "BATCHYARD_LOG_FORMAT",
        "text, or json: one JSON object per line (time, level, logger, message, batchId, jobId)",
    )
    log_level: str = _setting(
        "info",
        parsers.choice("debug", "info", "warning", "error"),
        "BATCHYARD_LOG_LEVEL",
        "lowest level logged: debug (job lifecycle lines too), info, warning or error",
    )
    event_ring_size: int = _setting(
        10_000, parsers.whole_number(1), None, "events kept for replay (Last-Event-ID, resumeFrom)"
    )
    subscriber_buffer: int = _setting(
        1_000, parsers.whole_number(1), None, "events buffered per subscriber before it is dropped"
    )
    max_body_bytes: int = _setting(
        10 * 1024 * 1024,
        parsers.whole_number(1),
        None,
        "largest HTTP request body accepted (413 beyond)",
    )
    cors_origins: tuple[str, ...] = _setting(
        (),
        parsers.origins,
        "BATCHYARD_CORS_ORIGINS",
        "comma-separated origins allowed by CORS (* for any); none: no CORS headers at all",
    )
    type_overrides: Mapping[str, TypeOverrides] = attrs.field(
        factory=dict, converter=_freeze, validator=parsers.validator(_type_overrides)
    )
    #: The ``[schedules.NAME]`` tables of the TOML file, by name.
    schedules: Mapping[str, Schedule] = attrs.field(
        factory=dict, converter=_freeze, validator=parsers.validator(_schedules)
    )

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        profile: str | None = None,
        config_path: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Settings from every source, by the precedence of ``engine.config.sources``.

        Args:
            environ: the environment to read.
            profile: a profile named on the command line.
            config_path: a TOML file with an optional ``[engine]`` table and
                optional ``[types.NAME]`` and ``[schedules.NAME]`` tables.
            overrides: command-line values by field name; None values are
                ignored (flags that were not given).
            defaults: the command's own defaults by field name, beneath every
                source (``batchyard worker`` starts work by itself).

        Returns:
            The settings.

        Raises:
            ConfigError: a value is invalid, a profile, table or key is
                unknown, or the file is missing, unreadable or not TOML.
        """
        values: dict[str, Any] = dict(defaults or {})
        types: dict[str, TypeOverrides] = {}
        schedules: dict[str, Schedule] = {}
        if config_path is not None:
            document = read_document(Path(config_path))
            in_file, types = from_document(document, Path(config_path), _SPECS)
            values |= in_file
            schedules = read_schedules(document.get("schedules", {}), str(config_path))
        values |= from_environment(environ, _SPECS)
        values |= from_flags(profile, overrides or {}, _SPECS)
        return cls(type_overrides=types, schedules=schedules, **values)

    def for_type(self, name: str) -> EffectiveTypeLimits:
        """The limits of job type ``name``: its overrides, else the batch-level settings."""
        limits = self.type_overrides.get(name, TypeOverrides())
        return EffectiveTypeLimits(
            concurrency=_first(limits.concurrency, self.concurrency),
            rate_limit=_first(limits.rate_limit, self.rate_limit),
            max_attempts=_first(limits.max_attempts, self.job_max_attempts),
            timeout_seconds=_first(limits.timeout_seconds, self.job_timeout_seconds) or None,
        )

    def describe(self) -> str:
        """The limits in force on one line, for the start-up log; no secrets."""
        rate = self.rate_limit
        parts = [
            f"batches={self.max_active_batches}",
            f"concurrency={self.concurrency}",
            f"batch_size={self.batch_size}",
            f"rate={'unlimited' if rate.unlimited else _rate_text(rate)}",
            f"grace={format_seconds(self.shutdown_grace_seconds)}s",
            f"retries={self.batch_retries}",
            f"attempts={self.job_max_attempts}",
            f"warm={self.warm_children}",
            f"store={redact_url(self.store_url)}",
        ]
        if self.type_overrides:
            parts.append(f"types={','.join(sorted(self.type_overrides))}")
        if self.schedules:
            parts.append(f"schedules={','.join(sorted(self.schedules))}")
        if self.auto_start:
            parts.append("auto_start=1")
        if self.token is not None:
            parts.append("auth=token")
        if self.cors_origins:
            parts.append(f"cors={','.join(self.cors_origins)}")
        return " ".join(parts)


def _rate_text(rate: RateLimit) -> str:
    return f"{rate.count}/{format_seconds(rate.per_seconds)}s"


def _first(override: _T | None, default: _T) -> _T:
    return default if override is None else override


_SPECS: Mapping[str, SettingSpec] = MappingProxyType(
    {a.name: a.metadata[_SPEC] for a in attrs.fields(Settings) if _SPEC in a.metadata}
)


def _default_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, RateLimit):
        return value.format()
    if isinstance(value, float):
        return format_seconds(value)
    if isinstance(value, tuple):
        return ",".join(value) or None
    return None if value is None else str(value)


#: Every environment variable by name, in the order of the contract's table.
ENV_VARIABLES: Mapping[str, EnvVariable] = MappingProxyType(
    {
        spec.env: EnvVariable(
            name=spec.env,
            field=field,
            default=_default_text(attrs.fields_dict(Settings)[field].default),
            help=spec.help,
        )
        for field, spec in _SPECS.items()
        if spec.env is not None
    }
)
