"""The function RQ's workers import and run."""

from __future__ import annotations

from bench.peers import signals


def job(run: str, total: int, seconds: float, record_start: bool, hold: bool) -> None:
    signals.job(run, total, seconds, record_start, hold)
