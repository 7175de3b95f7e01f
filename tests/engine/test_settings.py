"""Settings: defaults, every variable, rates, profiles, precedence, the TOML file."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.config.settings import (
    ENV_VARIABLES,
    PROFILE_VARIABLE,
    PROFILES,
    EffectiveTypeLimits,
    RateLimit,
    Settings,
    TypeOverrides,
)
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
    "event_ring_size": 10_000,
    "subscriber_buffer": 1_000,
    "max_body_bytes": 10 * 1024 * 1024,
}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "batchyard.toml"
    path.write_text(text, encoding="utf-8")
    return path


# Defaults and the variable table


def test_every_default() -> None:
    settings = Settings.load({})
    assert {a.name for a in attrs.fields(Settings)} == {*DEFAULTS, "type_overrides"}
    assert {name: getattr(settings, name) for name in DEFAULTS} == DEFAULTS
    assert settings.type_overrides == {}
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
    }
    assert list(ENV_VARIABLES)[:4] == list(PROFILES["dev"])
    for name, variable in ENV_VARIABLES.items():
        assert variable.name == name
        assert variable.help
        if variable.default is not None:
            assert Settings.load({name: variable.default}) == Settings()


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


# Rates


@pytest.mark.parametrize(
    ("text", "count", "per_seconds"),
    [
        ("20", 20, 60.0),
        ("0", 0, 60.0),
        ("5/2s", 5, 2.0),
        ("5/2", 5, 2.0),
        ("5/500ms", 5, 0.5),
        ("100/1m", 100, 60.0),
        ("10/1.5s", 10, 1.5),
        ("3/1h", 3, 3600.0),
        (" 7/.5s ", 7, 0.5),
        ("0/2s", 0, 2.0),
    ],
)
def test_rate_syntax(text: str, count: int, per_seconds: float) -> None:
    assert RateLimit.parse(text) == rate(count, per_seconds)


def test_unlimited_is_a_count_of_zero() -> None:
    assert RateLimit.parse("0").unlimited
    assert RateLimit.parse("0/5s").unlimited
    assert not RateLimit.parse("1/5s").unlimited


@pytest.mark.parametrize(
    ("limit", "text"),
    [(rate(20), "20"), (rate(0), "0"), (rate(5, 2.0), "5/2s"), (rate(10, 1.5), "10/1.5s")],
)
def test_rate_format(limit: RateLimit, text: str) -> None:
    assert limit.format() == text


@given(
    count=st.integers(min_value=0),
    per_seconds=st.floats(min_value=0, exclude_min=True, allow_infinity=False),
)
def test_format_then_parse_is_the_identity(count: int, per_seconds: float) -> None:
    limit = RateLimit(count=count, per_seconds=per_seconds)
    assert RateLimit.parse(limit.format()) == limit


@pytest.mark.parametrize(
    ("count", "per_seconds"), [(-1, 1.0), (1, 0.0), (1, -1.0), (1, math.inf), (1, math.nan)]
)
def test_rate_limit_refuses_bad_values(count: int, per_seconds: float) -> None:
    with pytest.raises(ConfigError):
        RateLimit(count=count, per_seconds=per_seconds)


def test_parse_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^X='5/0s' is not a rate: the window must be"):
        RateLimit.parse("5/0s", source="X")


# Profiles and precedence


@pytest.mark.parametrize(
    ("profile", "seeds"),
    [
        ("dev", (1, 1, 3, rate(10))),
        ("production", (2, 3, 10, rate(30))),
        ("high-performance", (4, 5, 20, rate(60))),
    ],
)
def test_profiles(profile: str, seeds: tuple[int, int, int, RateLimit]) -> None:
    expected = attrs.evolve(
        Settings(),
        max_active_batches=seeds[0],
        concurrency=seeds[1],
        batch_size=seeds[2],
        rate_limit=seeds[3],
    )
    assert Settings.load({}, profile=profile) == expected
    assert Settings.load({PROFILE_VARIABLE: profile}) == expected


def test_unknown_profile_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load({}, profile="turbo")
    message = str(caught.value)
    assert message.startswith("profile='turbo' is not a profile")
    assert all(name in message for name in ("dev", "production", "high-performance"))


def test_explicit_variable_beats_a_profile_from_the_environment() -> None:
    settings = Settings.load({PROFILE_VARIABLE: "dev", "EMBEDDING_CONCURRENCY": "4"})
    assert (settings.concurrency, settings.batch_size) == (4, 3)


def test_profile_flag_beats_the_environment() -> None:
    env = {"EMBEDDING_CONCURRENCY": "4", PROFILE_VARIABLE: "dev", "BATCH_RETRIES": "3"}
    settings = Settings.load(env, profile="high-performance")
    assert (settings.concurrency, settings.batch_size, settings.batch_retries) == (5, 20, 3)


def test_flags_beat_the_profile_flag() -> None:
    settings = Settings.load(
        {"EMBEDDING_CONCURRENCY": "4"}, profile="dev", overrides={"concurrency": 7}
    )
    assert (settings.concurrency, settings.batch_size) == (7, 3)


def test_none_flags_are_ignored() -> None:
    settings = Settings.load({"EMBEDDING_CONCURRENCY": "4"}, overrides={"concurrency": None})
    assert settings.concurrency == 4


def test_flags_take_strings_or_values() -> None:
    settings = Settings.load(
        {},
        overrides={"rate_limit": "5/2s", "job_modules": "a, b", "lease_seconds": 3, "token": "t"},
    )
    assert settings.rate_limit == rate(5, 2.0)
    assert settings.job_modules == ("a", "b")
    assert settings.lease_seconds == 3.0
    assert settings.token == "t"


def test_bad_flags_are_named() -> None:
    with pytest.raises(ConfigError, match=r"^concurrency=0 must be at least 1$"):
        Settings.load({}, overrides={"concurrency": 0})
    with pytest.raises(ConfigError, match="unknown key 'concurency'"):
        Settings.load({}, overrides={"concurency": 3})
    with pytest.raises(ConfigError, match="unknown key 'type_overrides'"):
        Settings.load({}, overrides={"type_overrides": {}})


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "[engine]\nconcurrency = 3\nbatch_size = 8\nbatch_retries = 4\nwarm_children = 2\n",
    )
    settings = Settings.load(
        {"EMBEDDING_BATCH_SIZE": "9", "BATCH_RETRIES": "5"},
        config_path=path,
        overrides={"batch_retries": 6},
    )
    assert settings.concurrency == 3  # file over default
    assert settings.batch_size == 9  # environment over file
    assert settings.batch_retries == 6  # flag over environment
    assert settings.warm_children == 2


def test_a_profile_sits_just_under_its_own_source(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[engine]\nprofile = "dev"\nbatch_size = 7\nconcurrency = 3\n')
    from_file = Settings.load({}, config_path=path)
    assert (from_file.max_active_batches, from_file.concurrency, from_file.batch_size) == (1, 3, 7)
    from_env = Settings.load({PROFILE_VARIABLE: "high-performance"}, config_path=path)
    assert (from_env.concurrency, from_env.batch_size) == (5, 20)


# The TOML file


def test_file_engine_table(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
        [engine]
        rate_limit = 0
        shutdown_grace_seconds = 2
        job_modules = ["myjobs", " other.jobs "]
        store_url = "redis://cache:6379/1"
        lease_seconds = 5.5
        event_ring_size = 50
        subscriber_buffer = 10
        max_body_bytes = 1024
        """,
    )
    settings = Settings.load({}, config_path=str(path))
    assert settings == attrs.evolve(
        Settings(),
        rate_limit=rate(0),
        shutdown_grace_seconds=2.0,
        job_modules=("myjobs", "other.jobs"),
        store_url="redis://cache:6379/1",
        lease_seconds=5.5,
        event_ring_size=50,
        subscriber_buffer=10,
        max_body_bytes=1024,
    )


TYPES_FILE = """
[types.embed]
concurrency = 1
rate_limit = "10/1s"
max_attempts = 3

[types.resize]
rate_limit = 0

[types.plain]
"""


def test_file_type_overrides(tmp_path: Path) -> None:
    settings = Settings.load({}, config_path=write_config(tmp_path, TYPES_FILE))
    assert settings.type_overrides == {
        "embed": TypeOverrides(concurrency=1, rate_limit=rate(10, 1.0), max_attempts=3),
        "resize": TypeOverrides(rate_limit=rate(0)),
        "plain": TypeOverrides(),
    }
    with pytest.raises(TypeError):
        settings.type_overrides["new"] = TypeOverrides()  # type: ignore[index]


def test_for_type_merges_overrides_over_the_batch_settings(tmp_path: Path) -> None:
    env = {"EMBEDDING_CONCURRENCY": "6", "EMBEDDING_RATE_LIMIT": "7", "JOB_MAX_ATTEMPTS": "2"}
    settings = Settings.load(env, config_path=write_config(tmp_path, TYPES_FILE))
    batch = EffectiveTypeLimits(concurrency=6, rate_limit=rate(7), max_attempts=2)
    assert settings.for_type("embed") == EffectiveTypeLimits(
        concurrency=1, rate_limit=rate(10, 1.0), max_attempts=3
    )
    assert settings.for_type("resize") == attrs.evolve(batch, rate_limit=rate(0))
    assert settings.for_type("plain") == batch
    assert settings.for_type("unknown") == batch


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[engine\n", "not valid TOML"),
        ("[enigne]\n", "has unknown key 'enigne'"),
        ("engine = 3\n", "[engine] is not a table"),
        ("[engine]\nconcurency = 3\n", "[engine] has unknown key 'concurency'"),
        ("[engine]\nEMBEDDING_CONCURRENCY = 3\n", "[engine] has unknown key"),
        ("[engine]\nconcurrency = 0\n", "[engine] concurrency=0 must be at least 1"),
        ("[engine]\nconcurrency = true\n", "[engine] concurrency=True is not a whole number"),
        ("[engine]\nconcurrency = 2.0\n", "[engine] concurrency=2.0 is not a whole number"),
        ("[engine]\nshutdown_grace_seconds = nan\n", "shutdown_grace_seconds=nan must be finite"),
        ("[engine]\nlease_seconds = 0\n", "[engine] lease_seconds=0 must be positive"),
        ("[engine]\njob_modules = [1]\n", "[engine] job_modules=[1] is not a comma-separated"),
        ("[engine]\nstore_url = 5\n", "[engine] store_url=5 is not a string"),
        ('[engine]\nprofile = "turbo"\n', "[engine] profile='turbo' is not a profile"),
        ("types = 3\n", "[types] is not a table"),
        ("[types]\nembed = 3\n", "[types.embed] is not a table"),
        ("[types.embed]\nretries = 2\n", "[types.embed] has unknown key 'retries'"),
        ("[types.embed]\nconcurrency = 0\n", "[types.embed] concurrency=0 must be at least 1"),
        ("[types.embed]\nmax_attempts = 0\n", "[types.embed] max_attempts=0 must be at least"),
        ('[types.embed]\nrate_limit = "fast"\n', "[types.embed] rate_limit='fast' is not a rate"),
        ("[types.embed]\nrate_limit = 2.5\n", "[types.embed] rate_limit=2.5 is not a rate"),
        ("[types.embed]\nrate_limit = -1\n", "[types.embed] rate_limit='-1' is not a rate"),
    ],
)
def test_file_errors_name_file_table_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Settings.load({}, config_path=path)
    assert str(caught.value).startswith(str(path))
    assert fragment in str(caught.value)


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(missing))}: configuration file not"):
        Settings.load({}, config_path=missing)
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        Settings.load({}, config_path=tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[engine]\nstore_url = "sqlite:///caf\xe9.db"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load({}, config_path=path)


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
