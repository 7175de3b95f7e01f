"""A batch's progress counts, kept from outcomes, and their coalesced
``processing:progress`` events.

Design notes
------------
``processing:progress`` is a snapshot (contract, "Events"), so a run
publishes at most one per burst of child reports: ``report`` notes that
the child reported progress, and ``snapshot`` gives the event once the
burst is published, with the counts as they are then. ``latest`` gives one
whenever the counts moved since the last one, so a run's last counts are
published before its ``done`` (jobs settled at a child's exit move them
with no report from the child).
"""

from __future__ import annotations

import attrs

from protocols import events

__all__ = ["Tally"]


@attrs.define
class Tally:
    """A batch's finished jobs out of its total, kept up to date from outcomes."""

    completed: int = 0
    failed: int = 0
    total: int = 0
    _reported: bool = attrs.field(default=False, init=False)
    _published: tuple[int, int, int] | None = attrs.field(default=None, init=False)

    def report(self) -> None:
        """The child reported progress: the burst ends with a snapshot."""
        self._reported = True

    def snapshot(self, batch_id: str) -> events.ProcessingProgress | None:
        """The burst's ``processing:progress``, if the child reported progress in it."""
        if not self._reported:
            return None
        return self._publish(batch_id)

    def latest(self, batch_id: str) -> events.ProcessingProgress | None:
        """A ``processing:progress`` if the counts moved since the last one."""
        if self._published == (self.completed, self.failed, self.total):
            return None
        return self._publish(batch_id)

    def _publish(self, batch_id: str) -> events.ProcessingProgress:
        self._reported = False
        self._published = (self.completed, self.failed, self.total)
        return events.ProcessingProgress(
            batch_id=batch_id, completed=self.completed, failed=self.failed, total=self.total
        )
