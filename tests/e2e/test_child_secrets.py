"""A real child inherits the engine's environment but not its secrets:
the API token and the store URL's password (contract, "Security")."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.config.child_env import child_environment
from engine.store.sqlite import open_sqlite_store
from engine.testing import collect_until, jobs_of, open_test_engine, settings_for_tests

TOKEN = "token-for-the-api-only"
PASSWORD = "store-password-kept-by-the-engine"
STORE_URL = f"redis://batchyard:{PASSWORD}@127.0.0.1:6399/0"
NAMES = ["BATCHYARD_TOKEN", "BATCHYARD_STORE", "HANDLER_API_KEY", "COPY_OF_TOKEN", "PW"]


async def test_a_child_gets_the_environment_without_token_or_store_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHYARD_TOKEN", TOKEN)
    monkeypatch.setenv("BATCHYARD_STORE", STORE_URL)
    monkeypatch.setenv("HANDLER_API_KEY", "the-handler-needs-this")
    monkeypatch.setenv("COPY_OF_TOKEN", f"Bearer {TOKEN}")
    monkeypatch.setenv("PW", PASSWORD)
    # The settings name a Redis URL with a password; the engine itself runs
    # on a SQLite store passed beside them, so no Redis is needed.
    async with (
        open_sqlite_store(str(tmp_path / "batchyard.db")) as store,
        open_test_engine(tmp_path, store=store, store_url=STORE_URL, token=TOKEN) as engine,
    ):
        batch_id, _ = await engine.create_batch(
            None, "environment", jobs_of("environment", [{"names": NAMES}])
        )
        with engine.subscribe([batch_id]) as sub, trio.fail_after(30):
            await engine.start(batch_id)
            await collect_until(sub)
        (job,) = (await engine.list_jobs(batch_id, limit=1)).jobs
    assert job.result is not None, job.error
    assert job.result["named"] == {
        "BATCHYARD_STORE": "redis://batchyard:***@127.0.0.1:6399/0",
        "HANDLER_API_KEY": "the-handler-needs-this",
    }
    everything = "\n".join(job.result["values"])
    assert TOKEN not in everything and PASSWORD not in everything
    assert len(job.result["values"]) > 3  # PATH and the rest came through


def test_short_secrets_are_matched_whole_only(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path, store_url="redis://:pw@h:1/0", token="tk")
    environ = {"PATH": "/usr/bin:/tkpw", "A": "pw", "B": "tk", "BATCHYARD_TOKEN": "x"}
    assert child_environment(settings, environ) == {"PATH": "/usr/bin:/tkpw"}


def test_no_secrets_no_change(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path)
    environ = {"PATH": "/usr/bin", "BATCHYARD_STORE": settings.store_url}
    assert child_environment(settings, environ) == environ
