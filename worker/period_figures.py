"""A period's compliance figures per segment (rep, team, policy, lead source), as plain data.
``pipeline/period_report.py`` feeds them from the store, judged by the engine; no I/O here.

Every figure is taken from the period a deadline or an event fell in: a lead's first-touch
result counts in the period its first-touch deadline fell in, a breach of any rule in the
period of that rule's deadline, an escalation, acknowledgement, snooze or recycle in the
period it happened.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from worker.sla import RuleState

#: The segments a report is cut by, in the order they are shown.
DIMENSIONS = ("rep", "team", "policy", "source")

_MISSED = frozenset({RuleState.BREACHED, RuleState.MET_LATE})


@dataclass
class Segment:
    """One rep's, team's, policy's or source's figures over the period."""

    #: Leads whose first-touch clock started in the period.
    received: int = 0
    #: First-touch deadlines that fell in the period, by how they ended (or not yet).
    met: int = 0
    met_late: int = 0
    breached: int = 0
    open: int = 0
    #: Business time from the clock's start to the first touch, of those deadlines met.
    to_first_touch: list[timedelta] = field(default_factory=list)
    #: Touches logged in the period on leads received in it, and their time (calls, meetings).
    touches: int = 0
    time_spent: timedelta = timedelta(0)
    #: Deadlines of each rule that fell in the period and were missed (breached or met late).
    breaches: Counter[str] = field(default_factory=Counter)
    escalations: int = 0
    acknowledged: int = 0
    snoozed: int = 0
    recycled: int = 0

    def add_first_touch(self, state: str, business_time: timedelta | None) -> None:
        if state == RuleState.MET:
            self.met += 1
        elif state == RuleState.MET_LATE:
            self.met_late += 1
        elif state == RuleState.BREACHED:
            self.breached += 1
        else:
            self.open += 1
        if business_time is not None:
            self.to_first_touch.append(business_time)

    def add_deadline(self, rule: str, state: str) -> None:
        if state in _MISSED:
            self.breaches[rule] += 1

    @property
    def decided(self) -> int:
        return self.met + self.met_late + self.breached

    @property
    def first_touch_met_share(self) -> float | None:
        """Deadlines met on time of those decided (None: none decided)."""
        return self.met / self.decided if self.decided else None

    @property
    def median_to_first_touch(self) -> timedelta | None:
        return median(self.to_first_touch)

    @property
    def p90_to_first_touch(self) -> timedelta | None:
        return percentile(self.to_first_touch, 90)

    @property
    def touches_per_lead(self) -> float | None:
        return self.touches / self.received if self.received else None

    @property
    def early_returns(self) -> int:
        return self.breaches["early_return"]

    def absorb(self, other: Segment) -> None:
        """Add ``other``'s figures to these."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.to_first_touch += other.to_first_touch
        self.time_spent += other.time_spent
        self.breaches.update(other.breaches)

    def is_empty(self) -> bool:
        return self == Segment()


#: The plain counts of a segment (added up by :meth:`Segment.absorb`).
_COUNTS = (
    "received", "met", "met_late", "breached", "open", "touches",
    "escalations", "acknowledged", "snoozed", "recycled",
)  # fmt: skip


def median(values: list[timedelta]) -> timedelta | None:
    """The middle value; of an even count, the mean of the middle two."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: list[timedelta], share: int) -> timedelta | None:
    """Nearest-rank percentile: the smallest value with at least ``share`` % of the values at or
    below it (so the 90th of ten values is the ninth)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]


@dataclass
class PeriodFigures:
    """The whole period: a :class:`Segment` per value of each dimension, and the total."""

    label: str
    total: Segment = field(default_factory=Segment)
    marketing: MarketingPeriod | None = None
    by: dict[str, dict[str, Segment]] = field(
        default_factory=lambda: {dimension: {} for dimension in DIMENSIONS}
    )

    def segments(self, keys: dict[str, str]) -> list[Segment]:
        """The total and the segment of each dimension's value in ``keys``."""
        found = [self.total]
        for dimension, value in keys.items():
            found.append(self.by[dimension].setdefault(value, Segment()))
        return found


@dataclass
class Pace:
    """Qualified leads delivered against the quota over the period (monthly quota × the
    period's share of its months)."""

    delivered: int = 0
    quota: float = 0.0

    @property
    def attainment(self) -> float | None:
        return self.delivered / self.quota if self.quota else None


@dataclass
class MarketingPeriod:
    """Marketing's side over the period."""

    #: What "delivered" counts: leads that entered the qualified stage, or leads created.
    basis: str
    total: Pace
    teams: dict[str, Pace] = field(default_factory=dict)
    sources: dict[str, Pace] = field(default_factory=dict)
    #: Delivered leads with every required field (now).
    complete: int = 0
    #: Returned leads per source (and campaign) by reason.
    feedback: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def completeness(self) -> float | None:
        return self.complete / self.total.delivered if self.total.delivered else None
