"""HTTP bodies of job control: one job's answer to cancel, and a running
batch's child as ``GET /api/batches/{batchId}`` shows it.

Frozen attrs values encoded by the one converter (``protocols.codec``),
camelCase on the wire like every body of ``protocols.api``.
"""

from __future__ import annotations

import attrs

from protocols.lifecycle import JobState

__all__ = ["ChildView", "JobStateView"]


@attrs.frozen(kw_only=True)
class ChildView:
    """The child process running a batch on this engine: its pid, resident
    memory, CPU seconds (user + system) and the jobs it started."""

    pid: int
    rss_bytes: int
    cpu_seconds: float
    jobs_run: int


@attrs.frozen(kw_only=True)
class JobStateView:
    """``POST /api/jobs/{jobId}/cancel`` and ``.../retry``: the job's state
    once the request took effect."""

    job_id: str
    state: JobState
