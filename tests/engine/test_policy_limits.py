"""A run's limits as the engine's policy works them out: the batch's rate
limit goes to the child with the run's recent starts, and prefetch is off
only while a job type has a rate limit of its own."""

from __future__ import annotations

from pathlib import Path

from engine.config.settings import RateLimit
from engine.config.sources import TypeOverrides
from engine.core.policy import EnginePolicy
from engine.jobs.registry import REGISTRY
from engine.testing.harness import open_fake_store, settings_for_tests
from protocols import ipc


async def test_a_batch_rate_limit_leaves_prefetch_on_and_is_handed_to_children(
    tmp_path: Path,
) -> None:
    settings = settings_for_tests(
        tmp_path, concurrency=3, batch_size=7, rate_limit=RateLimit(count=5, per_seconds=2.0)
    )
    async with open_fake_store() as store:
        limits = EnginePolicy(settings, REGISTRY, store).run_limits("noop")
    assert limits.prefetch == 7  # a claim's worth
    assert limits.starts is not None
    assert limits.starts.handover(0.0) == ipc.StartRate(count=5, per_seconds=2.0)


async def test_an_unlimited_batch_hands_children_no_rate(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path, rate_limit=RateLimit(count=0, per_seconds=60.0))
    async with open_fake_store() as store:
        limits = EnginePolicy(settings, REGISTRY, store).run_limits("noop")
    assert limits.starts is None


async def test_a_type_rate_limit_turns_prefetch_off(tmp_path: Path) -> None:
    types = {"noop": TypeOverrides(rate_limit=RateLimit(count=5, per_seconds=1.0))}
    settings = settings_for_tests(tmp_path, concurrency=3, type_overrides=types)
    async with open_fake_store() as store:
        limits = EnginePolicy(settings, REGISTRY, store).run_limits("noop")
    assert limits.prefetch == 0
