"""The built-in job types of the contract, registered on import.

They double as the workloads of the test suite and the benchmarks, so each
validates its payload and fails with a clear message on a wrong one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import trio

from engine.jobs.registry import JobContext, job_type

__all__ = ["cpu", "echo", "fail", "flaky", "noop", "sleep"]


def _field(payload: Any, name: str, kind: type[Any]) -> Any:
    if not isinstance(payload, dict) or name not in payload:
        raise ValueError(f"payload must be an object with {name!r}")
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(
            f"payload field {name!r} must be a {kind.__name__ if kind is not float else 'number'}"
        )
    return value


@job_type("noop")
async def noop(payload: Any, ctx: JobContext) -> None:
    """Does nothing; returns null."""


@job_type("echo")
async def echo(payload: Any, ctx: JobContext) -> Any:
    """Returns its payload."""
    return payload


@job_type("sleep")
async def sleep(payload: Any, ctx: JobContext) -> None:
    """Sleeps ``seconds`` cooperatively: cancellation interrupts it."""
    seconds = float(_field(payload, "seconds", (int, float)))  # type: ignore[arg-type]
    if seconds < 0:
        raise ValueError("payload field 'seconds' must not be negative")
    await trio.sleep(seconds)


@job_type("cpu")
def cpu(payload: Any, ctx: JobContext) -> str:
    """``iterations`` rounds of SHA-256 in a worker thread; the hex digest."""
    iterations = _field(payload, "iterations", int)
    digest = b""
    for _ in range(iterations):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


@job_type("fail")
async def fail(payload: Any, ctx: JobContext) -> None:
    """Raises, so the job fails with ``message``."""
    message = payload.get("message") if isinstance(payload, dict) else None
    raise RuntimeError(message if isinstance(message, str) else "failed on purpose")


@job_type("flaky")
async def flaky(payload: Any, ctx: JobContext) -> str:
    """Fails its first ``failTimes`` attempts, then succeeds."""
    fail_times = _field(payload, "failTimes", int)
    if ctx.attempt <= fail_times:
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt} of {fail_times} planned")
    return f"succeeded on attempt {ctx.attempt}"
