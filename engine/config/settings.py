"""Engine settings: defaults, profiles, a TOML file, the environment and flags.

Design notes
------------
Every setting is declared once, as a field of ``Settings``: its default, its
environment variable (if it has one), its help text, and its *kind*, one
function that turns text or a TOML value into the field's type and refuses
what is out of range. The loader, the field validators and ``ENV_VARIABLES``
(which the command line and the README render) all derive from those
declarations, so no field's variable, default or help is written twice.

Sources, lowest precedence first:

1. the defaults (``Settings()``);
2. the ``[engine]`` table of the TOML file (``--config``);
3. the environment;
4. the command line: ``profile=`` and ``overrides=`` of ``Settings.load``.

A *profile* stands for values of the four seed variables (``PROFILES``). It
is expanded at the level of the source that names it, just beneath that
source's own explicit values: ``profile = "dev"`` in ``[engine]``,
``BATCHYARD_PROFILE=dev`` in the environment, ``--profile dev`` on the
command line. So ``--profile dev`` beats ``EMBEDDING_CONCURRENCY=4`` from the
environment (a flag is the more deliberate choice, and the contract lets
flags win), while ``--profile dev --concurrency 4``, or
``BATCHYARD_PROFILE=dev`` with ``EMBEDDING_CONCURRENCY=4``, runs with 4.

Keys of ``[engine]`` and of ``overrides`` are field names (``concurrency``),
not variable names: TOML keys are lower case, and ``[types.NAME]`` uses the
same words. Only the contract's variables exist in the environment; the
internal tunables (``lease_seconds``, ``event_ring_size``,
``subscriber_buffer``, ``max_body_bytes``) come from the file or the flags.
A string is read exactly as the environment variable would be
(``rate_limit = "5/2s"``); other TOML values are taken as they are
(``rate_limit = 20``, ``job_modules = ["a", "b"]``). A variable set to the
empty string is a value, not an absence: ``BATCHYARD_TOKEN=`` turns
authentication off even when the file sets a token, and
``EMBEDDING_CONCURRENCY=`` is an error.

An unlimited rate is ``RateLimit(count=0, ...)``, tested with
``rate.unlimited``. ``None`` is not used for it, because in ``TypeOverrides``
None means "as the batch says", which is not "unlimited for this type". The
window of an unlimited rate is kept though it means nothing, so that
``RateLimit.parse(rate.format()) == rate`` for every rate.

Every bad value raises ``ConfigError`` naming its source and the value:
``EMBEDDING_RATE_LIMIT='abc' is not a rate: ...``,
``batchyard.toml: [types.embed] concurrency=0 must be at least 1``. The
token and a store URL's password never appear in ``repr`` or ``describe``.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs

from engine.errors import ConfigError

__all__ = [
    "ENV_VARIABLES",
    "PROFILES",
    "PROFILE_VARIABLE",
    "EffectiveTypeLimits",
    "EnvVariable",
    "RateLimit",
    "Settings",
    "TypeOverrides",
]

#: The environment variable that names a profile.
PROFILE_VARIABLE = "BATCHYARD_PROFILE"

_SEEDS = (
    "MAX_ACTIVE_BATCHES",
    "EMBEDDING_CONCURRENCY",
    "EMBEDDING_BATCH_SIZE",
    "EMBEDDING_RATE_LIMIT",
)

#: The contract's profiles: the text each gives the four seed variables.
PROFILES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        name: MappingProxyType(dict(zip(_SEEDS, values, strict=True)))
        for name, values in {
            "dev": ("1", "1", "3", "10"),
            "production": ("2", "3", "10", "30"),
            "high-performance": ("4", "5", "20", "60"),
        }.items()
    }
)

_T = TypeVar("_T")

# A kind reads one setting from wherever it came: a string (read as its
# environment variable would be) or a value of the right type (from TOML, a
# flag, or the constructor). It returns the value in the field's type, or
# raises ConfigError naming ``source`` (a variable, a file key, a field).
_Kind = Callable[[object, str], Any]


def _invalid(source: str, value: object, reason: str) -> ConfigError:
    return ConfigError(f"{source}={value!r} {reason}")


def _validator(kind: _Kind) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: the value passes ``kind``, and is already what it reads as."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        canonical = kind(value, attribute.name)
        if canonical != value:
            raise _invalid(attribute.name, value, f"must be given as {canonical!r}")

    return validate


def _count(minimum: int) -> _Kind:
    def kind(value: object, source: str) -> int:
        try:
            number = int(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if not isinstance(number, int) or isinstance(number, bool):
            raise _invalid(source, value, "is not a whole number")
        if number < minimum:
            raise _invalid(source, value, f"must be at least {minimum}")
        return number

    return kind


def _seconds(*, positive: bool) -> _Kind:
    def kind(value: object, source: str) -> float:
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _invalid(source, value, "is not a number of seconds")
        if not math.isfinite(number):
            raise _invalid(source, value, "must be finite")
        if number < 0 or (positive and number == 0):
            raise _invalid(
                source, value, "must be positive" if positive else "must not be negative"
            )
        return float(number)

    return kind


def _optional(kind: _Kind) -> _Kind:
    return lambda value, source: None if value is None else kind(value, source)


def _format_seconds(seconds: float) -> str:
    # Whole numbers print without ".0" ("60s", not "60.0s"); anything else as
    # repr, the shortest text that reads back as the same float.
    if float(seconds).is_integer() and abs(seconds) < 1e15:
        return str(int(seconds))
    return repr(float(seconds))


_RATE = re.compile(
    r"(?P<count>-?\d+)"
    r"(?:/(?P<window>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?P<unit>ms|s|m|h)?)?"
)
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NOT_A_RATE = "is not a rate: expected N or N/Ts (e.g. 20, 5/2s)"


@attrs.frozen(kw_only=True)
class RateLimit:
    """``count`` job starts per ``per_seconds`` seconds; a count of 0 is unlimited.

    Strict: no window of ``per_seconds`` ever holds more than ``count`` starts.
    """

    count: int = attrs.field(validator=_validator(_count(0)))
    per_seconds: float = attrs.field(
        converter=float, validator=_validator(_seconds(positive=True))
    )

    @property
    def unlimited(self) -> bool:
        """True when starts are not limited at all (the text was ``0``)."""
        return self.count == 0

    @classmethod
    def parse(cls, text: str, *, source: str = "rate_limit") -> RateLimit:
        """Read a rate: ``N`` per minute (``0`` is unlimited), or ``N/T`` with a unit.

        ``T`` is a decimal number of seconds, or of the unit ``ms``, ``s``,
        ``m`` or ``h``: ``5/2s``, ``5/2``, ``5/500ms``, ``100/1m``, ``10/1.5s``.

        Args:
            text: the rate as written.
            source: where ``text`` came from, named in the error message.

        Returns:
            The rate.

        Raises:
            ConfigError: ``text`` is not a rate, its count is negative, or its
                window is not a positive, finite time.
        """
        match = _RATE.fullmatch(text.strip())
        try:
            count = int(match["count"]) if match else None
        except ValueError:  # more digits than int() reads
            count = None
        if match is None or count is None:
            raise _invalid(source, text, _NOT_A_RATE)
        if count < 0:
            raise _invalid(source, text, "is not a rate: the count must not be negative")
        if match["window"] is None:
            return cls(count=count, per_seconds=60.0)
        per_seconds = float(match["window"]) * _UNIT_SECONDS[match["unit"] or "s"]
        if not (per_seconds > 0 and math.isfinite(per_seconds)):
            raise _invalid(source, text, "is not a rate: the window must be positive and finite")
        return cls(count=count, per_seconds=per_seconds)

    def format(self) -> str:
        """The shortest text that ``parse`` reads back as this rate: ``20``, ``5/2s``."""
        if self.per_seconds == 60:
            return str(self.count)
        return f"{self.count}/{_format_seconds(self.per_seconds)}s"


def _rate(value: object, source: str) -> RateLimit:
    if isinstance(value, RateLimit):
        return value
    if isinstance(value, str | int) and not isinstance(value, bool):
        return RateLimit.parse(str(value), source=source)
    raise _invalid(source, value, _NOT_A_RATE)


_STORE_SCHEMES = ("sqlite:///", "redis://", "rediss://")


def _store_url(value: object, source: str) -> str:
    if not isinstance(value, str):
        raise _invalid(source, value, "is not a string")
    try:
        urlsplit(value)
    except ValueError:  # a malformed host, such as an unclosed IPv6 bracket
        parsed = False
    else:
        parsed = value.startswith(_STORE_SCHEMES)
    if not parsed:
        reason = "is not a store URL: expected sqlite:///PATH or redis://HOST:PORT/DB"
        raise _invalid(source, _redact_url(value), reason)
    return value


def _token(value: object, source: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _invalid(source, value, "is not a string")
    return value or None


def _modules(value: object, source: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not (isinstance(items, list | tuple) and all(isinstance(i, str) for i in items)):
        raise _invalid(source, value, "is not a comma-separated list of modules")
    names = tuple(name for name in (item.strip() for item in items) if name)
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise _invalid(source, value, f"is not a list of modules: {name!r} is no module name")
    return names


def _redact_url(url: str) -> str:
    if "@" not in url:  # no user information, so no password
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # cannot tell the password from the rest: hide it all
        return f"{url.partition(':')[0]}:***"
    if parts.password is None:
        return url
    user_and_password, _, host = parts.netloc.rpartition("@")
    user = user_and_password.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _redact_token(token: str | None) -> str:
    return "None" if token is None else "'***'"


@attrs.frozen(kw_only=True)
class TypeOverrides:
    """The limits one ``[types.NAME]`` table sets; None means "as the batch says"."""

    concurrency: int | None = attrs.field(default=None, validator=_validator(_optional(_count(1))))
    rate_limit: RateLimit | None = attrs.field(
        default=None, validator=_validator(_optional(_rate))
    )
    max_attempts: int | None = attrs.field(
        default=None, validator=_validator(_optional(_count(1)))
    )


@attrs.frozen(kw_only=True)
class EffectiveTypeLimits:
    """The limits in force for one job type: its overrides, else the batch's settings."""

    concurrency: int
    rate_limit: RateLimit
    max_attempts: int


@attrs.frozen(kw_only=True)
class EnvVariable:
    """One environment variable: the field it sets, its default as text (None when
    it has none), and what it means."""

    name: str
    field: str
    default: str | None
    help: str


@attrs.frozen(kw_only=True)
class _Spec:
    kind: _Kind
    env: str | None
    help: str


_SPEC = "batchyard.setting"


def _setting(
    default: object,
    kind: _Kind,
    env: str | None,
    help: str,
    redact: Callable[[Any], str] | None = None,
) -> Any:
    """A ``Settings`` field, with its spec in the field's metadata."""
    return attrs.field(
        default=default,
        validator=_validator(kind),
        repr=redact or True,
        metadata={_SPEC: _Spec(kind=kind, env=env, help=help)},
    )


def _type_overrides(value: object, source: str) -> Mapping[str, TypeOverrides]:
    if not isinstance(value, Mapping) or not all(
        isinstance(name, str) and name and isinstance(limits, TypeOverrides)
        for name, limits in value.items()
    ):
        raise _invalid(source, value, "is not a mapping of job type names to TypeOverrides")
    return value


def _freeze(value: Mapping[str, TypeOverrides]) -> Mapping[str, TypeOverrides]:
    return MappingProxyType(dict(value))


_DEFAULT_RATE = RateLimit(count=20, per_seconds=60.0)


@attrs.frozen(kw_only=True)
class Settings:
    """Every setting of one engine; ``Settings.load`` reads them from their sources.

    The help of each field is in its declaration (``ENV_VARIABLES`` shows it
    for the fields that a variable sets).
    """

    max_active_batches: int = _setting(
        1, _count(1), "MAX_ACTIVE_BATCHES", "child processes (running batches) at once"
    )
    concurrency: int = _setting(
        2, _count(1), "EMBEDDING_CONCURRENCY", "jobs in flight at once inside one batch"
    )
    batch_size: int = _setting(
        5, _count(1), "EMBEDDING_BATCH_SIZE", "jobs claimed from the store per fetch"
    )
    # _setting declares a field; it is not a default computed per instance.
    rate_limit: RateLimit = _setting(  # noqa: RUF009
        _DEFAULT_RATE,
        _rate,
        "EMBEDDING_RATE_LIMIT",
        "job starts per minute per batch; 0 = unlimited; N/Ts = N starts per T seconds",
    )
    shutdown_grace_seconds: float = _setting(
        10.0,
        _seconds(positive=False),
        "SHUTDOWN_GRACE_SECONDS",
        "seconds children get to finish in-flight jobs before SIGKILL",
    )
    batch_retries: int = _setting(
        1, _count(0), "BATCH_RETRIES", "restarts of a crashed child within one batch run"
    )
    warm_children: int = _setting(
        1, _count(0), "WARM_CHILDREN", "spare child processes kept started and idle"
    )
    job_max_attempts: int = _setting(
        1, _count(1), "JOB_MAX_ATTEMPTS", "attempts per job before it is failed"
    )
    job_backoff_seconds: float = _setting(
        1.0,
        _seconds(positive=False),
        "JOB_BACKOFF_SECONDS",
        "base delay of the exponential backoff between a job's attempts",
    )
    store_url: str = _setting(
        "sqlite:///batchyard.db",
        _store_url,
        "BATCHYARD_STORE",
        "store URL: sqlite:///PATH or redis://HOST:PORT/DB",
        lambda url: repr(_redact_url(url)),
    )
    job_modules: tuple[str, ...] = _setting(
        (), _modules, "BATCHYARD_JOBS", "comma-separated modules whose job types to register"
    )
    token: str | None = _setting(
        None,
        _token,
        "BATCHYARD_TOKEN",
        "bearer token that API, WebSocket and metrics requests must carry",
        _redact_token,
    )
    # A lease outlives any stall of a healthy engine (a slow fsync, a long GC)
    # by a wide margin, yet a dead engine's jobs come back within a minute.
    lease_seconds: float = _setting(
        30.0, _seconds(positive=True), None, "seconds a claimed job stays leased unrenewed"
    )
    event_ring_size: int = _setting(
        10_000, _count(1), None, "events kept for replay (Last-Event-ID, resumeFrom)"
    )
    subscriber_buffer: int = _setting(
        1_000, _count(1), None, "events buffered per subscriber before it is dropped"
    )
    max_body_bytes: int = _setting(
        10 * 1024 * 1024, _count(1), None, "largest HTTP request body accepted (413 beyond)"
    )
    type_overrides: Mapping[str, TypeOverrides] = attrs.field(
        factory=dict, converter=_freeze, validator=_validator(_type_overrides)
    )

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        profile: str | None = None,
        config_path: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Settings from every source, by the precedence in the module docstring.

        Args:
            environ: the environment to read.
            profile: a profile named on the command line.
            config_path: a TOML file with an optional ``[engine]`` table and
                optional ``[types.NAME]`` tables.
            overrides: command-line values by field name; None values are
                ignored (flags that were not given).

        Returns:
            The settings.

        Raises:
            ConfigError: a value is invalid, a profile, table or key is
                unknown, or the file is missing, unreadable or not TOML.
        """
        values: dict[str, Any] = {}
        types: dict[str, TypeOverrides] = {}
        if config_path is not None:
            values, types = _read_config(Path(config_path))
        values |= _layer(
            environ.get(PROFILE_VARIABLE),
            PROFILE_VARIABLE,
            {field: (environ[var], var) for var, field in _FIELD_OF.items() if var in environ},
        )
        flags = {k: v for k, v in (overrides or {}).items() if v is not None}
        _refuse_unknown(flags, _SPECS, "the command line")
        values |= _layer(profile, "profile", {k: (v, k) for k, v in flags.items()})
        return cls(type_overrides=types, **values)

    def for_type(self, name: str) -> EffectiveTypeLimits:
        """The limits of job type ``name``: its overrides, else the batch-level settings."""
        limits = self.type_overrides.get(name, TypeOverrides())
        return EffectiveTypeLimits(
            concurrency=_first(limits.concurrency, self.concurrency),
            rate_limit=_first(limits.rate_limit, self.rate_limit),
            max_attempts=_first(limits.max_attempts, self.job_max_attempts),
        )

    def describe(self) -> str:
        """The limits in force on one line, for the start-up log; no secrets."""
        rate = self.rate_limit
        parts = [
            f"batches={self.max_active_batches}",
            f"concurrency={self.concurrency}",
            f"batch_size={self.batch_size}",
            f"rate={'unlimited' if rate.unlimited else _rate_text(rate)}",
            f"grace={_format_seconds(self.shutdown_grace_seconds)}s",
            f"retries={self.batch_retries}",
            f"attempts={self.job_max_attempts}",
            f"warm={self.warm_children}",
            f"store={_redact_url(self.store_url)}",
        ]
        if self.type_overrides:
            parts.append(f"types={','.join(sorted(self.type_overrides))}")
        if self.token is not None:
            parts.append("auth=token")
        return " ".join(parts)


def _rate_text(rate: RateLimit) -> str:
    return f"{rate.count}/{_format_seconds(rate.per_seconds)}s"


def _first(override: _T | None, default: _T) -> _T:
    return default if override is None else override


_SPECS: Mapping[str, _Spec] = MappingProxyType(
    {a.name: a.metadata[_SPEC] for a in attrs.fields(Settings) if _SPEC in a.metadata}
)
_FIELD_OF = {spec.env: field for field, spec in _SPECS.items() if spec.env is not None}


def _default_text(value: object) -> str | None:
    if isinstance(value, RateLimit):
        return value.format()
    if isinstance(value, float):
        return _format_seconds(value)
    if isinstance(value, tuple):
        return ",".join(value) or None
    return None if value is None else str(value)


#: Every environment variable by name, in the order of the contract's table.
ENV_VARIABLES: Mapping[str, EnvVariable] = MappingProxyType(
    {
        var: EnvVariable(
            name=var,
            field=field,
            default=_default_text(attrs.fields_dict(Settings)[field].default),
            help=_SPECS[field].help,
        )
        for var, field in _FIELD_OF.items()
    }
)


def _layer(
    profile: object, profile_source: str, explicit: Mapping[str, tuple[object, str]]
) -> dict[str, Any]:
    """One source's values: the profile it names (if any) under its explicit values.

    ``explicit`` maps a field name to its value and the value's source.
    """
    seeds: dict[str, tuple[object, str]] = {}
    if profile is not None:
        if not (isinstance(profile, str) and profile in PROFILES):
            expected = ", ".join(PROFILES)
            raise _invalid(
                profile_source, profile, f"is not a profile: expected one of {expected}"
            )
        seeds = {_FIELD_OF[var]: (text, var) for var, text in PROFILES[profile].items()}
    merged = {**seeds, **explicit}
    return {field: _SPECS[field].kind(value, source) for field, (value, source) in merged.items()}


def _refuse_unknown(table: Mapping[str, object], known: Mapping[str, object], where: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{where} has unknown key {key!r}: expected one of {', '.join(known)}"
            )


# The keys of a [types.NAME] table, each read like the batch-level field named.
_TYPE_KEYS = {
    "concurrency": "concurrency",
    "rate_limit": "rate_limit",
    "max_attempts": "job_max_attempts",
}


def _read_config(path: Path) -> tuple[dict[str, Any], dict[str, TypeOverrides]]:
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    _refuse_unknown(document, {"engine": None, "types": None}, str(path))
    engine = _table(document.get("engine", {}), f"{path}: [engine]")
    _refuse_unknown(engine, {"profile": None, **_SPECS}, f"{path}: [engine]")
    values = _layer(
        engine.get("profile"),
        f"{path}: [engine] profile",
        {k: (v, f"{path}: [engine] {k}") for k, v in engine.items() if k != "profile"},
    )
    types: dict[str, TypeOverrides] = {}
    for name, table in _table(document.get("types", {}), f"{path}: [types]").items():
        where = f"{path}: [types.{name}]"
        _refuse_unknown(_table(table, where), _TYPE_KEYS, where)
        types[name] = TypeOverrides(
            **{k: _SPECS[_TYPE_KEYS[k]].kind(v, f"{where} {k}") for k, v in table.items()}
        )
    return values, types


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} is not a table")
    return value
