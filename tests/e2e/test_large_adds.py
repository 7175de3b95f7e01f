"""A large add hands the memory it freed back to the system, once its
objects are gone; a small one does not bother."""

from __future__ import annotations

import platform

import httpx
import pytest

from engine.server import heap
from tests.e2e.helpers import create_batch


def test_the_c_library_takes_freed_memory_back_where_it_is_glibc() -> None:
    assert heap.release_freed_memory() is (platform.libc_ver()[0] == "glibc")


async def test_only_large_adds_release_freed_memory(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(heap, "release_freed_memory", lambda: bool(calls.append(None)))
    batch_id = await create_batch(client, "noop", [{"n": 1}])
    small = {"jobs": [{"payload": n} for n in range(heap.LARGE_ADD - 1)]}
    answer = await client.post(f"/api/batches/{batch_id}/jobs", json=small)
    assert answer.status_code == 201, answer.text
    assert calls == []
    large = {"jobs": [{"payload": n} for n in range(heap.LARGE_ADD)]}
    answer = await client.post(f"/api/batches/{batch_id}/jobs", json=large)
    assert answer.status_code == 201, answer.text
    assert answer.json()["enqueued"] == heap.LARGE_ADD
    assert len(calls) == 1
    await create_batch(client, "noop", list(range(heap.LARGE_ADD)))
    assert len(calls) == 2
