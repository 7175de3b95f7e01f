"""The collector's pace while serving, and its restoration afterwards."""

from __future__ import annotations

import gc

import pytest

from engine.server.collector import serving_collector


def test_serving_freezes_what_is_alive_and_raises_the_thresholds_then_restores_them() -> None:
    before = gc.get_threshold()
    with serving_collector():
        assert gc.get_threshold() == (50_000, 20, 10)
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_thresholds_come_back_when_serving_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), serving_collector():
        raise RuntimeError("serving failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_overlapping_servers_restore_the_collector_when_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first, second = serving_collector(), serving_collector()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first ends before the second
    assert gc.get_threshold() == (50_000, 20, 10)
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
