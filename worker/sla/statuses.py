"""The lead's status over time: when it was paused and when it went back to marketing.

Works on integer UTC microseconds. It must never read the clock: "now" is an argument, and a
status change whose instant is unknown is placed deterministically (see ``status_timeline``), so
that the evaluation of a lead does not drift between two checks.
"""

from __future__ import annotations

from collections.abc import Collection
from operator import itemgetter

from worker.sla.calendar import to_us
from worker.sla.model import Lead

# (start, end) of a stretch in which the SLA clocks stand still; end None = still standing.
Pause = tuple[int, int | None]

_at = itemgetter(0)


def status_timeline(lead: Lead, now: int, start: int) -> tuple[list[tuple[int, str | None]], int]:
    """(changes at or before ``now`` in time order, earliest later change or -1).

    When ``lead.status`` differs from the last observed change, the change to it is placed at the
    last instant the data vouches for: the last observed change, or the clock start ``start``
    (assignment) when there is no history. That is a pure function of the inputs, so it does not
    move with ``now``; the sync stage records changes as observed, so this only matters for leads
    imported without history.
    """
    changes: list[tuple[int, str | None]] = []
    later = -1
    for change in lead.status_history:
        at = to_us(change.at)
        if at <= now:
            changes.append((at, change.status))
        elif later < 0 or at < later:
            later = at
    changes.sort(key=_at)
    last_status = changes[-1][1] if changes else None
    if lead.status != last_status:
        known = changes[-1][0] if changes else start
        changes.append((max(known, start), lead.status))
    return changes, later


def pauses_in(
    changes: list[tuple[int, str | None]], statuses: Collection[str], start: int
) -> list[Pause]:
    """Stretches from ``start`` on whose status is one of ``statuses``, in time order."""
    pauses: list[Pause] = []
    paused_since: int | None = None
    for at, status in changes:
        paused = status is not None and status in statuses
        if paused and paused_since is None:
            paused_since = at
        elif not paused and paused_since is not None:
            if at > start:
                pauses.append((max(paused_since, start), at))
            paused_since = None
    if paused_since is not None:
        pauses.append((max(paused_since, start), None))
    return pauses


def returned_at(changes: list[tuple[int, str | None]], statuses: Collection[str]) -> int | None:
    """When the lead entered its current run of return statuses; None when not returned."""
    since: int | None = None
    for at, status in changes:
        if status is not None and status in statuses:
            if since is None:
                since = at
        else:
            since = None
    return since
