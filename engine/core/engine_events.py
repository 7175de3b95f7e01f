"""The Engine's events: subscriptions to the bus, its statistics, events
published from outside a run, and observers.

``EngineEvents`` is inherited by ``Engine`` (``engine.core.engine``); it
reaches the bus through the engine's ``_bus``, which callers never see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from engine.core.bus import BusStatistics, EventBus, Subscription
    from protocols.events import Event, EventData

__all__ = ["EngineEvents"]


class EngineEvents:
    """The event side of the ``Engine`` facade."""

    _bus: EventBus

    def subscribe(
        self, batch_ids: Collection[str] | None = None, *, resume_from: int | None = None
    ) -> Subscription:
        """A subscription (a context manager) to the events of ``batch_ids``
        (None: every batch). With ``resume_from``, the retained events after
        that seq come first (``replay_complete`` says whether all were
        retained). After ``end_subscriptions`` it ends at once."""
        return self._bus.subscribe(batch_ids, resume_from=resume_from)

    def event_statistics(self) -> BusStatistics:
        """A snapshot of the event bus: events published, subscribers, drops."""
        return self._bus.statistics()

    def publish(self, data: EventData) -> Event | None:
        """Publish an event of the caller's own (tests inject events so),
        stamped with the next seq like the runs' events; returns it, or None
        on an event log (which stamps it when it appends it)."""
        return self._bus.publish(data)

    def observe_events(self, observer: Callable[[Event], None]) -> None:
        """Call ``observer`` with every event from now on, right after the
        subscribers were offered it (with an event log: every engine's events,
        as they come back from the log): it must be quick and must not raise.
        For measurements (the bench times publication)."""
        self._bus.observe(observer)

    def end_subscriptions(self) -> None:
        """End every subscription once it drained what it holds; later ones
        end at once. Call it after ``shutdown``, so subscribers get the runs'
        final events. Idempotent."""
        self._bus.close()
