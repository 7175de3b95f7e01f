"""Where settings come from: profiles, precedence, the TOML file."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from engine.config.parsers import RateLimit
from engine.config.settings import EffectiveTypeLimits, Settings
from engine.config.sources import PROFILE_VARIABLE, TypeOverrides
from engine.errors import ConfigError


def rate(count: int, per_seconds: float = 60.0) -> RateLimit:
    return RateLimit(count=count, per_seconds=per_seconds)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "batchyard.toml"
    path.write_text(text, encoding="utf-8")
    return path


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
timeout_seconds = 90

[types.resize]
rate_limit = 0

[types.plain]
"""


def test_file_type_overrides(tmp_path: Path) -> None:
    settings = Settings.load({}, config_path=write_config(tmp_path, TYPES_FILE))
    assert settings.type_overrides == {
        "embed": TypeOverrides(
            concurrency=1, rate_limit=rate(10, 1.0), max_attempts=3, timeout_seconds=90.0
        ),
        "resize": TypeOverrides(rate_limit=rate(0)),
        "plain": TypeOverrides(),
    }
    with pytest.raises(TypeError):
        settings.type_overrides["new"] = TypeOverrides()  # type: ignore[index]


def test_for_type_merges_overrides_over_the_batch_settings(tmp_path: Path) -> None:
    env = {
        "EMBEDDING_CONCURRENCY": "6",
        "EMBEDDING_RATE_LIMIT": "7",
        "JOB_MAX_ATTEMPTS": "2",
        "JOB_TIMEOUT_SECONDS": "30",
    }
    settings = Settings.load(env, config_path=write_config(tmp_path, TYPES_FILE))
    batch = EffectiveTypeLimits(
        concurrency=6, rate_limit=rate(7), max_attempts=2, timeout_seconds=30.0
    )
    assert settings.for_type("embed") == EffectiveTypeLimits(
        concurrency=1, rate_limit=rate(10, 1.0), max_attempts=3, timeout_seconds=90.0
    )
    assert Settings.load({}).for_type("embed").timeout_seconds is None  # 0: no limit
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
        ("[types.embed]\ntimeout_seconds = -2\n", "[types.embed] timeout_seconds=-2"),
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
