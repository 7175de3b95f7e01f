"""Job types: the registry, the handler context, and loading job modules.

Design notes
------------
A job type is a name bound to a handler ``handler(payload, ctx)``. An
``async def`` handler runs in the child's Trio loop; a plain ``def`` handler
runs in a worker thread (``trio.to_thread.run_sync``), so blocking code
(a CPU loop, a synchronous HTTP client) never stalls the loop.

Handlers are registered with the ``job_type`` decorator into the default
``REGISTRY``. Modules named in ``BATCHYARD_JOBS`` are imported by name, in the
engine (to know which types exist, so unknown types are refused when jobs are
submitted) and in each child (to run them). A type name is never imported
from user input: only modules the operator configured are.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import attrs
import trio

from engine.errors import JobError, UnknownJobType

__all__ = [
    "REGISTRY",
    "JobContext",
    "JobRegistry",
    "JobType",
    "call_handler",
    "job_type",
    "load_job_modules",
]

Handler = Callable[[Any, "JobContext"], Any]
H = TypeVar("H", bound=Handler)

_TYPE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")


def _cannot_enqueue(type: str, payload: Any = None, batch: str | None = None, **_: Any) -> None:
    raise JobError("ctx.enqueue: this context cannot add jobs")


@attrs.frozen(kw_only=True)
class JobContext:
    """What a handler knows about the job it runs.

    ``report_progress(percent)`` and ``enqueue(...)`` may be called from the
    Trio loop (async handlers) or from the worker thread (sync handlers);
    progress values are clamped to 0..100.
    """

    job_id: str
    batch_id: str
    attempt: int
    _report: Callable[[float], None] = attrs.field(alias="report", repr=False)
    _enqueue: Callable[..., None] = attrs.field(
        alias="enqueue_to", default=_cannot_enqueue, repr=False
    )

    def report_progress(self, percent: float) -> None:
        """Tell subscribers how far along the job is, in percent."""
        self._report(min(100.0, max(0.0, float(percent))))

    def enqueue(
        self, type: str, payload: Any = None, batch: str | None = None, **fields: Any
    ) -> None:
        """Add a job of ``type`` with ``payload`` once this job completes: to
        this job's batch, or to the existing batch ``batch``. ``fields`` are
        those of a job in the HTTP API (``key``, ``priority``,
        ``delay_seconds`` or ``delaySeconds``, ``cost``, ``timeout_seconds``). The
        jobs are recorded in
        the same store step as this job's completion, so a job that fails
        (or is retried) adds nothing; a running batch picks up the jobs
        added to it.

        Raises:
            UnknownJobType: no job type ``type`` is registered.
            TypeError, ValueError: a field or the payload is not one the
                HTTP API would take.
        """
        self._enqueue(type, payload, batch, **fields)


@attrs.frozen(kw_only=True)
class JobType:
    """A registered job type."""

    name: str
    handler: Handler
    is_async: bool


class JobRegistry:
    """Job types by name."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def register(self, name: str, handler: Handler, *, replace: bool = False) -> JobType:
        """Bind ``name`` to ``handler``.

        Raises:
            JobError: the name is malformed, or taken and ``replace`` is False.
        """
        if not name or not set(name) <= _TYPE_NAME_CHARS or len(name) > 128:
            raise JobError(f"invalid job type name {name!r}: use letters, digits and ._:-")
        if name in self._types and not replace:
            raise JobError(f"job type {name!r} is already registered")
        job = JobType(name=name, handler=handler, is_async=inspect.iscoroutinefunction(handler))
        self._types[name] = job
        return job

    def get(self, name: str) -> JobType:
        """The job type called ``name``.

        Raises:
            UnknownJobType: nothing is registered under that name.
        """
        try:
            return self._types[name]
        except KeyError:
            raise UnknownJobType(f"unknown job type {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._types)


#: The registry the ``job_type`` decorator fills by default.
REGISTRY = JobRegistry()


def job_type(name: str | None = None, *, registry: JobRegistry = REGISTRY) -> Callable[[H], H]:
    """Register the decorated function as a job type (default name: its own).

    ::

        @job_type("embed")
        async def embed(payload, ctx):
            ctx.report_progress(50)
            return await model.embed(payload["text"])
    """

    def register(handler: H) -> H:
        registry.register(name or handler.__name__, handler)
        return handler

    return register


def load_job_modules(modules: Iterable[str]) -> None:
    """Import each module so its ``job_type`` decorators run.

    The built-in types are always loaded first.

    Raises:
        JobError: a module cannot be imported; the message names it.
    """
    for module in ("engine.jobs.builtins", *modules):
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise JobError(f"cannot import job module {module!r}: {exc}") from exc


async def call_handler(job: JobType, payload: Any, ctx: JobContext) -> Any:
    """Run a handler where it belongs: async in the loop, sync in a thread.

    Cancellation: an async handler is cancelled where it waits; a sync
    handler's thread is abandoned (it cannot be interrupted) and its result
    ignored.
    """
    if job.is_async:
        result: Awaitable[Any] = job.handler(payload, ctx)
        return await result
    return await trio.to_thread.run_sync(job.handler, payload, ctx, abandon_on_cancel=True)
