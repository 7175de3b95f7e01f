"""Settings: defaults, every variable, direct construction, describe and repr."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from engine.config.parsers import RateLimit
from engine.config.settings import ENV_VARIABLES, Settings
from engine.config.sources import PROFILE_VARIABLE, PROFILES, TypeOverrides
from engine.errors import ConfigError


def rate(count: int, per_seconds: float = 60.0) -> RateLimit:
    return RateLimit(count=count, per_seconds=per_seconds)


DEFAULTS: dict[str, Any] = {
    "max_active_batches": 1,
    "concurrency": 2,
    "batch_size": 5,
    "rate_limit": rate(20),
    "shutdown_grace_seconds": 10.0,
    "batch_retries": 1,
    "warm_children": 1,
    "job_max_attempts": 1,
    "job_backoff_seconds": 1.0,
    "store_url": "sqlite:///batchyard.db",
    "job_modules": (),
    "token": None,
    "lease_seconds": 30.0,
    "auto_start": False,
    "job_timeout_seconds": 0.0,
    "max_jobs_per_child": 0,
    "max_child_memory_mb": 0,
    "child_silence_seconds": 120.0,
    "status_log_seconds": 30.0,
    "log_format": "text",
    "log_level": "info",
    "event_ring_size": 10_000,
    "subscriber_buffer": 1_000,
    "max_body_bytes": 10 * 1024 * 1024,
    "cors_origins": (),
}


# Defaults and the variable table


def test_every_default() -> None:
    settings = Settings.load({})
    assert {a.name for a in attrs.fields(Settings)} == {*DEFAULTS, "type_overrides", "schedules"}
    assert {name: getattr(settings, name) for name in DEFAULTS} == DEFAULTS
    assert settings.type_overrides == {}
    assert settings.schedules == {}
    assert settings == Settings()


def test_env_variables_are_the_contracts_in_its_order() -> None:
    assert {name: (v.field, v.default) for name, v in ENV_VARIABLES.items()} == {
        "MAX_ACTIVE_BATCHES": ("max_active_batches", "1"),
        "EMBEDDING_CONCURRENCY": ("concurrency", "2"),
        "EMBEDDING_BATCH_SIZE": ("batch_size", "5"),
        "EMBEDDING_RATE_LIMIT": ("rate_limit", "20"),
        "SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", "10"),
        "BATCH_RETRIES": ("batch_retries", "1"),
        "WARM_CHILDREN": ("warm_children", "1"),
        "JOB_MAX_ATTEMPTS": ("job_max_attempts", "1"),
        "JOB_BACKOFF_SECONDS": ("job_backoff_seconds", "1"),
        "BATCHYARD_STORE": ("store_url", "sqlite:///batchyard.db"),
        "BATCHYARD_JOBS": ("job_modules", None),
        "BATCHYARD_TOKEN": ("token", None),
        "LEASE_SECONDS": ("lease_seconds", "30"),
        "AUTO_START": ("auto_start", "0"),
        "JOB_TIMEOUT_SECONDS": ("job_timeout_seconds", "0"),
        "MAX_JOBS_PER_CHILD": ("max_jobs_per_child", "0"),
        "MAX_CHILD_MEMORY_MB": ("max_child_memory_mb", "0"),
        "CHILD_SILENCE_SECONDS": ("child_silence_seconds", "120"),
        "STATUS_LOG_SECONDS": ("status_log_seconds", "30"),
        "BATCHYARD_LOG_FORMAT": ("log_format", "text"),
        "BATCHYARD_LOG_LEVEL": ("log_level", "info"),
        "BATCHYARD_CORS_ORIGINS": ("cors_origins", None),
    }
    assert list(ENV_VARIABLES)[:4] == list(PROFILES["dev"])
    for name, variable in ENV_VARIABLES.items():
        assert variable.name == name
        assert variable.help
        if variable.default is not None:
            assert Settings.load({name: variable.default}) == Settings()


def test_a_commands_defaults_lie_beneath_every_source() -> None:
    assert Settings.load({}, defaults={"auto_start": True}).auto_start is True
    assert Settings.load({"AUTO_START": "0"}, defaults={"auto_start": True}).auto_start is False
    assert Settings.load({}, defaults={"auto_start": True}).describe().endswith("auto_start=1")


def test_load_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_CONCURRENCY", "9")
    assert Settings.load().concurrency == 9


# Every variable, valid and invalid


@pytest.mark.parametrize(
    ("variable", "text", "field", "expected"),
    [
        ("MAX_ACTIVE_BATCHES", "3", "max_active_batches", 3),
        ("EMBEDDING_CONCURRENCY", " 7 ", "concurrency", 7),
        ("EMBEDDING_BATCH_SIZE", "50", "batch_size", 50),
        ("EMBEDDING_RATE_LIMIT", "5/2s", "rate_limit", rate(5, 2.0)),
        ("EMBEDDING_RATE_LIMIT", "0", "rate_limit", rate(0)),
        ("SHUTDOWN_GRACE_SECONDS", "2.5", "shutdown_grace_seconds", 2.5),
        ("SHUTDOWN_GRACE_SECONDS", "0", "shutdown_grace_seconds", 0.0),
        ("BATCH_RETRIES", "0", "batch_retries", 0),
        ("WARM_CHILDREN", "0", "warm_children", 0),
        ("JOB_MAX_ATTEMPTS", "4", "job_max_attempts", 4),
        ("JOB_BACKOFF_SECONDS", "0.25", "job_backoff_seconds", 0.25),
        ("BATCHYARD_STORE", "redis://localhost:6379/0", "store_url", "redis://localhost:6379/0"),
        ("BATCHYARD_STORE", "sqlite:////tmp/x.db", "store_url", "sqlite:////tmp/x.db"),
        ("BATCHYARD_JOBS", " a.b , c,, ", "job_modules", ("a.b", "c")),
        ("BATCHYARD_JOBS", "", "job_modules", ()),
        ("BATCHYARD_TOKEN", "s3cret", "token", "s3cret"),
        ("BATCHYARD_TOKEN", "", "token", None),
        ("LEASE_SECONDS", "9", "lease_seconds", 9.0),
        ("AUTO_START", "1", "auto_start", True),
        ("AUTO_START", " True ", "auto_start", True),
        ("AUTO_START", "0", "auto_start", False),
        ("JOB_TIMEOUT_SECONDS", "2.5", "job_timeout_seconds", 2.5),
        ("MAX_JOBS_PER_CHILD", "100", "max_jobs_per_child", 100),
        ("MAX_CHILD_MEMORY_MB", "512", "max_child_memory_mb", 512),
        ("CHILD_SILENCE_SECONDS", "0", "child_silence_seconds", 0.0),
        ("CHILD_SILENCE_SECONDS", "2.5", "child_silence_seconds", 2.5),
        ("STATUS_LOG_SECONDS", "0", "status_log_seconds", 0.0),
        ("STATUS_LOG_SECONDS", "2.5", "status_log_seconds", 2.5),
        ("BATCHYARD_LOG_FORMAT", " JSON ", "log_format", "json"),
        ("BATCHYARD_LOG_FORMAT", "text", "log_format", "text"),
        ("BATCHYARD_LOG_LEVEL", "DEBUG", "log_level", "debug"),
    ],
)
def test_every_variable_is_read(variable: str, text: str, field: str, expected: Any) -> None:
    assert Settings.load({variable: text}) == attrs.evolve(Settings(), **{field: expected})


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("MAX_ACTIVE_BATCHES", "0"),
        ("MAX_ACTIVE_BATCHES", "-1"),
        ("MAX_ACTIVE_BATCHES", "abc"),
        ("MAX_ACTIVE_BATCHES", "1.5"),
        ("MAX_ACTIVE_BATCHES", ""),
        ("EMBEDDING_CONCURRENCY", "0"),
        ("EMBEDDING_BATCH_SIZE", "0"),
        ("EMBEDDING_RATE_LIMIT", "abc"),
        ("EMBEDDING_RATE_LIMIT", "-1"),
        ("EMBEDDING_RATE_LIMIT", "-1/2s"),
        ("EMBEDDING_RATE_LIMIT", "5/0s"),
        ("EMBEDDING_RATE_LIMIT", "5/0"),
        ("EMBEDDING_RATE_LIMIT", "5/-2s"),
        ("EMBEDDING_RATE_LIMIT", "5/1e400s"),
        ("EMBEDDING_RATE_LIMIT", "5/2x"),
        ("EMBEDDING_RATE_LIMIT", "5/"),
        ("EMBEDDING_RATE_LIMIT", "/2s"),
        ("EMBEDDING_RATE_LIMIT", "2.5"),
        ("EMBEDDING_RATE_LIMIT", "inf"),
        ("EMBEDDING_RATE_LIMIT", ""),
        ("SHUTDOWN_GRACE_SECONDS", "-1"),
        ("SHUTDOWN_GRACE_SECONDS", "nan"),
        ("SHUTDOWN_GRACE_SECONDS", "inf"),
        ("SHUTDOWN_GRACE_SECONDS", "soon"),
        ("BATCH_RETRIES", "-1"),
        ("WARM_CHILDREN", "-1"),
        ("JOB_MAX_ATTEMPTS", "0"),
        ("JOB_BACKOFF_SECONDS", "-0.5"),
        ("BATCHYARD_STORE", "postgres://db/x"),
        ("BATCHYARD_STORE", "sqlite://relative.db"),
        ("BATCHYARD_STORE", ""),
        ("BATCHYARD_STORE", "redis://[::1:6379/0"),
        ("BATCHYARD_JOBS", "my-jobs"),
        ("BATCHYARD_JOBS", "a..b"),
        ("LEASE_SECONDS", "0"),
        ("AUTO_START", "yes please"),
        ("AUTO_START", ""),
        ("JOB_TIMEOUT_SECONDS", "-1"),
        ("JOB_TIMEOUT_SECONDS", "nan"),
        ("MAX_JOBS_PER_CHILD", "-1"),
        ("MAX_CHILD_MEMORY_MB", "lots"),
        ("CHILD_SILENCE_SECONDS", "-1"),
        ("STATUS_LOG_SECONDS", "-1"),
        ("BATCHYARD_LOG_FORMAT", "xml"),
        ("BATCHYARD_LOG_FORMAT", ""),
        ("BATCHYARD_LOG_LEVEL", "loud"),
        (PROFILE_VARIABLE, "turbo"),
        (PROFILE_VARIABLE, ""),
    ],
)
def test_every_invalid_value_names_variable_and_value(variable: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load({variable: text})
    assert str(caught.value).startswith(f"{variable}={text!r} ")


def test_rate_error_message() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load({"EMBEDDING_RATE_LIMIT": "abc"})
    assert str(caught.value) == (
        "EMBEDDING_RATE_LIMIT='abc' is not a rate: expected N or N/Ts (e.g. 20, 5/2s)"
    )


def test_bad_store_url_is_reported_without_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load({"BATCHYARD_STORE": "postgres://me:hunter2@db/x"})
    assert "hunter2" not in str(caught.value)
    assert "postgres://me:***@db/x" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        Settings.load({"BATCHYARD_STORE": "postgres://me:hunter2@[db/x"})
    assert "hunter2" not in str(caught.value)


# Direct construction


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("max_active_batches", 0, "max_active_batches=0 must be at least 1"),
        ("concurrency", True, "concurrency=True is not a whole number"),
        ("concurrency", "3", "concurrency='3' must be given as 3"),
        ("batch_size", 0, "batch_size=0 must be at least 1"),
        ("batch_retries", -1, "batch_retries=-1 must be at least 0"),
        ("warm_children", -1, "warm_children=-1 must be at least 0"),
        ("job_max_attempts", 0, "job_max_attempts=0 must be at least 1"),
        ("shutdown_grace_seconds", -1.0, "must not be negative"),
        ("shutdown_grace_seconds", math.inf, "shutdown_grace_seconds=inf must be finite"),
        ("job_backoff_seconds", math.nan, "job_backoff_seconds=nan must be finite"),
        ("lease_seconds", 0.0, "lease_seconds=0.0 must be positive"),
        ("rate_limit", 20, "rate_limit=20 must be given as RateLimit(count=20"),
        ("store_url", "batchyard.db", "store_url='batchyard.db' is not a store URL"),
        ("job_modules", ["a"], "job_modules=['a'] must be given as ('a',)"),
        ("token", "", "token='' must be given as None"),
        ("type_overrides", {"": TypeOverrides()}, "is not a mapping of job type names"),
        ("type_overrides", {"embed": 3}, "is not a mapping of job type names"),
    ],
)
def test_construction_is_validated(field: str, value: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(**{field: value})
    assert fragment in str(caught.value)


@pytest.mark.parametrize("field", ["concurrency", "max_attempts"])
def test_type_overrides_are_validated(field: str) -> None:
    kwargs: dict[str, Any] = {field: 0}
    with pytest.raises(ConfigError, match=f"^{field}=0 must be at least 1$"):
        TypeOverrides(**kwargs)


# Describe and repr


def test_describe_defaults() -> None:
    assert Settings().describe() == (
        "batches=1 concurrency=2 batch_size=5 rate=20/60s grace=10s retries=1 attempts=1"
        " warm=1 store=sqlite:///batchyard.db"
    )


def test_describe_shows_what_is_set_and_hides_secrets() -> None:
    settings = Settings(
        rate_limit=rate(0),
        shutdown_grace_seconds=2.5,
        store_url="redis://me:hunter2@cache:6379/0",
        token="s3cret",
        type_overrides={"resize": TypeOverrides(), "embed": TypeOverrides()},
    )
    line = settings.describe()
    assert "rate=unlimited grace=2.5s" in line
    assert "store=redis://me:***@cache:6379/0" in line
    assert line.endswith("types=embed,resize auth=token")
    for text in (line, repr(settings)):
        assert "hunter2" not in text
        assert "s3cret" not in text
    assert "token='***'" in repr(settings)
    assert "store_url='redis://me:***@cache:6379/0'" in repr(settings)
