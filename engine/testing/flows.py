"""Job types for testing what a handler does to the flow of work, registered
with the fault types wherever ``engine.testing`` is imported:

* ``fan-out`` (``async def``) and ``fan-out-sync`` (plain ``def``), payload
  ``{"type": str, "payloads": [...], "batch"?: str, "fields"?: {...},
  "raise"?: str, "exit"?: int}``: ``ctx.enqueue`` one job of ``type`` per
  payload (to ``batch``, or the job's own), each with the keyword
  ``fields``; then raise ``raise`` if given (the job fails having
  enqueued), or end the child process with the code ``exit`` (it crashes
  having enqueued), else return how many were enqueued.
* ``rate-limited`` (``async def``) and ``rate-limited-sync`` (plain
  ``def``), payload ``{"times": int, "retryAfter": float}``: raise
  ``RateLimited(retry_after=retryAfter)`` the first ``times`` times the job
  runs in this child process, then return how many times it raised (its
  attempts stay at 1: a raise uses none).
"""

from __future__ import annotations

import os
from typing import Any

from engine.errors import RateLimited
from engine.jobs.registry import JobContext, job_type

__all__ = ["fan_out", "fan_out_sync", "rate_limited", "rate_limited_sync"]

# Raises so far per job id, in this process: attempts do not count them.
_RAISED: dict[str, int] = {}


def _fan_out(payload: Any, ctx: JobContext) -> int:
    for item in payload["payloads"]:
        ctx.enqueue(payload["type"], item, payload.get("batch"), **payload.get("fields", {}))
    if payload.get("raise"):
        raise RuntimeError(payload["raise"])
    if payload.get("exit"):
        os._exit(payload["exit"])
    return len(payload["payloads"])


@job_type("fan-out")
async def fan_out(payload: Any, ctx: JobContext) -> int:
    """Enqueues from the child's Trio loop."""
    return _fan_out(payload, ctx)


@job_type("fan-out-sync")
def fan_out_sync(payload: Any, ctx: JobContext) -> int:
    """Enqueues from a worker thread."""
    return _fan_out(payload, ctx)


def _rate_limited(payload: Any, ctx: JobContext) -> int:
    raised = _RAISED.get(ctx.job_id, 0)
    if raised < payload.get("times", 1):
        _RAISED[ctx.job_id] = raised + 1
        raise RateLimited(retry_after=payload.get("retryAfter", 1.0))
    return raised


@job_type("rate-limited")
async def rate_limited(payload: Any, ctx: JobContext) -> int:
    """Its API answers 429 ``times`` times, from the child's Trio loop."""
    return _rate_limited(payload, ctx)


@job_type("rate-limited-sync")
def rate_limited_sync(payload: Any, ctx: JobContext) -> int:
    """Its API answers 429 ``times`` times, from a worker thread."""
    return _rate_limited(payload, ctx)
