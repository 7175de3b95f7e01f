"""Building an engine's collaborators and wiring them to one another.

Design notes
------------
``build_engine_parts`` makes what an ``Engine`` hands its work to: the
pause switch, the one ``StoreRetry`` every store step shares, the job
policy, the runs, this engine's part in the cluster and its requests on
one job by id. The runs and the job requests wake the cluster (a run
ended, a job came back), which is built after the runs it drives: they
reach it through a closure. Building starts nothing: the engine opens the
cluster and serves the job requests in its nursery (``Engine._open``).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from engine.config.settings import Settings
from engine.core.bus import EventBus
from engine.core.cluster import Cluster
from engine.core.identity import EngineIdentity
from engine.core.job_control import JobControl
from engine.core.pause import PauseSwitch
from engine.core.policy import EnginePolicy
from engine.core.retry import StoreRetry
from engine.core.runs import Runs
from engine.jobs.registry import JobRegistry
from engine.store import Store
from engine.supervisor.children import ChildSupervisor

__all__ = ["EngineParts", "build_engine_parts"]


@attrs.frozen(kw_only=True)
class EngineParts:
    """The collaborators of one engine, wired together (owned by it)."""

    gate: PauseSwitch
    store_retry: StoreRetry
    policy: EnginePolicy
    runs: Runs
    cluster: Cluster
    jobs: JobControl


def build_engine_parts(
    *,
    settings: Settings,
    store: Store,
    bus: EventBus,
    registry: JobRegistry,
    nursery: trio.Nursery,
    supervisor: ChildSupervisor,
    clock: Callable[[], float],
    owner: str,
) -> EngineParts:
    """The collaborators of the engine named ``owner``, whose runs live in
    ``nursery``; the store, bus and supervisor are shared, not owned."""

    def wake_cluster() -> None:
        cluster.wake()

    gate = PauseSwitch()
    store_retry = StoreRetry()
    policy = EnginePolicy(settings, registry, store)
    runs = Runs(
        nursery,
        capacity=settings.max_active_batches,
        store=store,
        bus=bus,
        supervisor=supervisor,
        policy=policy,
        owner=owner,
        gate=gate,
        clock=clock,
        retry=store_retry,
        on_change=wake_cluster,
    )
    cluster = Cluster(
        store=store,
        runs=runs,
        identity=EngineIdentity.of_this_process(owner),
        lease_seconds=settings.lease_seconds,
        auto_start=settings.auto_start,
        clock=clock,
        renew_slots=policy.renew_type_slots,
        forget_slots=policy.forget_type_slots,
        retry=store_retry,
    )
    jobs = JobControl(
        store=store,
        runs=runs,
        owner=owner,
        grace_seconds=settings.shutdown_grace_seconds,
        wake=wake_cluster,
        retry=store_retry,
    )
    return EngineParts(
        gate=gate, store_retry=store_retry, policy=policy, runs=runs, cluster=cluster, jobs=jobs
    )
