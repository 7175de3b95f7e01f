"""Where settings come from: a TOML file, the environment, flags, profiles.

Design notes
------------
Sources, lowest precedence first:

1. the defaults (``Settings()``);
2. the ``[engine]`` table of the TOML file (``--config``): ``from_document``;
3. the environment: ``from_environment``;
4. the command line: ``from_flags``.

Each reader returns the values its source sets, by field name, each already
read by the field's kind (``engine.config.parsers``); ``Settings.load``
merges them in that order. The readers know the fields only through the
``SettingSpec`` of each, which ``Settings`` declares and passes in.

A *profile* stands for values of the four seed variables (``PROFILES``). It
is expanded at the level of the source that names it, just beneath that
source's own explicit values: ``profile = "dev"`` in ``[engine]``,
``BATCHYARD_PROFILE=dev`` in the environment, ``--profile dev`` on the
command line. So ``--profile dev`` beats ``EMBEDDING_CONCURRENCY=4`` from the
environment (a flag is the more deliberate choice, and the contract lets
flags win), while ``--profile dev --concurrency 4``, or
``BATCHYARD_PROFILE=dev`` with ``EMBEDDING_CONCURRENCY=4``, runs with 4.

Keys of ``[engine]`` and of the flags are field names (``concurrency``),
not variable names: TOML keys are lower case, and ``[types.NAME]`` uses the
same words. Only the documented variables (the contract's, and
``BATCHYARD_LOG_LEVEL`` and ``CHILD_SILENCE_SECONDS``) exist in the
environment; the internal tunables (``event_ring_size``, ``subscriber_buffer``,
``max_body_bytes``) come from the file or the flags.
A string is read exactly as the environment variable would be
(``rate_limit = "5/2s"``); other TOML values are taken as they are
(``rate_limit = 20``, ``job_modules = ["a", "b"]``). A variable set to the
empty string is a value, not an absence: ``BATCHYARD_TOKEN=`` turns
authentication off even when the file sets a token, and
``EMBEDDING_CONCURRENCY=`` is an error.

Every bad value raises ``ConfigError`` naming its source and the value:
``batchyard.toml: [types.embed] concurrency=0 must be at least 1``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from engine.config.parsers import (
    Kind,
    RateLimit,
    invalid,
    optional,
    rate,
    seconds,
    validator,
    whole_number,
)
from engine.errors import ConfigError

__all__ = [
    "PROFILES",
    "PROFILE_VARIABLE",
    "SettingSpec",
    "Specs",
    "TypeOverrides",
    "from_document",
    "from_environment",
    "from_flags",
    "read_document",
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


@attrs.frozen(kw_only=True)
class SettingSpec:
    """How one field of ``Settings`` is read: its kind, its environment
    variable (None when only the file and flags set it), and its help."""

    kind: Kind
    env: str | None
    help: str


#: Each field's spec, by field name.
Specs = Mapping[str, SettingSpec]


@attrs.frozen(kw_only=True)
class TypeOverrides:
    """The limits one ``[types.NAME]`` table sets; None means "as the batch says"."""

    concurrency: int | None = attrs.field(
        default=None, validator=validator(optional(whole_number(1)))
    )
    rate_limit: RateLimit | None = attrs.field(default=None, validator=validator(optional(rate)))
    max_attempts: int | None = attrs.field(
        default=None, validator=validator(optional(whole_number(1)))
    )
    timeout_seconds: float | None = attrs.field(
        default=None, validator=validator(optional(seconds(positive=False)))
    )


def from_environment(environ: Mapping[str, str], specs: Specs) -> dict[str, Any]:
    """The values ``environ`` sets, under the profile ``BATCHYARD_PROFILE`` names.

    Raises:
        ConfigError: a variable's value or the profile is invalid.
    """
    explicit = {
        field: (environ[spec.env], spec.env)
        for field, spec in specs.items()
        if spec.env is not None and spec.env in environ
    }
    return _layer(environ.get(PROFILE_VARIABLE), PROFILE_VARIABLE, explicit, specs)


def from_flags(profile: str | None, flags: Mapping[str, Any], specs: Specs) -> dict[str, Any]:
    """The values the command line sets, by field name, under its ``profile``;
    None values are flags that were not given.

    Raises:
        ConfigError: a flag is unknown or its value invalid, or the profile is.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    _refuse_unknown(given, specs, "the command line")
    return _layer(profile, "profile", {k: (v, k) for k, v in given.items()}, specs)


# The keys of a [types.NAME] table, each read like the batch-level field named.
_TYPE_KEYS = {
    "concurrency": "concurrency",
    "rate_limit": "rate_limit",
    "max_attempts": "job_max_attempts",
    "timeout_seconds": "job_timeout_seconds",
}


def from_document(
    document: Mapping[str, Any], path: Path, specs: Specs
) -> tuple[dict[str, Any], dict[str, TypeOverrides]]:
    """The values of the ``[engine]`` table (under its ``profile``) and the
    overrides of each ``[types.NAME]`` table of ``document``, the TOML file
    at ``path`` (``read_document``), which errors name.

    Raises:
        ConfigError: the document has an unknown table or key, or an
            invalid value.
    """
    _refuse_unknown(document, {"engine": None, "types": None, "schedules": None}, str(path))
    engine = _table(document.get("engine", {}), f"{path}: [engine]")
    _refuse_unknown(engine, {"profile": None, **specs}, f"{path}: [engine]")
    values = _layer(
        engine.get("profile"),
        f"{path}: [engine] profile",
        {k: (v, f"{path}: [engine] {k}") for k, v in engine.items() if k != "profile"},
        specs,
    )
    types: dict[str, TypeOverrides] = {}
    for name, table in _table(document.get("types", {}), f"{path}: [types]").items():
        where = f"{path}: [types.{name}]"
        _refuse_unknown(_table(table, where), _TYPE_KEYS, where)
        types[name] = TypeOverrides(
            **{k: specs[_TYPE_KEYS[k]].kind(v, f"{where} {k}") for k, v in table.items()}
        )
    return values, types


def read_document(path: Path) -> dict[str, Any]:
    """The TOML file at ``path``, parsed.

    Raises:
        ConfigError: the file is missing, unreadable or not TOML.
    """
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _layer(
    profile: object, profile_source: str, explicit: Mapping[str, tuple[object, str]], specs: Specs
) -> dict[str, Any]:
    """One source's values: the profile it names (if any) under its explicit values.

    ``explicit`` maps a field name to its value and the value's source.
    """
    seeds: dict[str, tuple[object, str]] = {}
    if profile is not None:
        if not (isinstance(profile, str) and profile in PROFILES):
            expected = ", ".join(PROFILES)
            raise invalid(profile_source, profile, f"is not a profile: expected one of {expected}")
        field_of = {spec.env: field for field, spec in specs.items()}
        seeds = {field_of[var]: (text, var) for var, text in PROFILES[profile].items()}
    merged = {**seeds, **explicit}
    return {field: specs[field].kind(value, source) for field, (value, source) in merged.items()}


def _refuse_unknown(table: Mapping[str, object], known: Mapping[str, object], where: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{where} has unknown key {key!r}: expected one of {', '.join(known)}"
            )


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} is not a table")
    return value
