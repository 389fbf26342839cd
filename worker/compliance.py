"""What a compliance report shows, as plain data: computed by ``pipeline/report.py`` from the
store, rendered for a terminal there and for Slack by ``slack/reports.py``. No I/O here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from worker.sla import RuleState

#: Finding states that are still running: neither met nor breached yet.
_OPEN_STATES = frozenset({RuleState.PENDING, RuleState.WARNING, RuleState.PAUSED})


@dataclass
class Compliance:
    """One segment's figures. ``met``, ``met_late`` and ``breached`` count *rules* (a lead has
    several: first touch, follow-up, …); ``leads`` and ``open_leads`` count *leads* (a lead
    is open while one of its rules still runs)."""

    met: int = 0
    met_late: int = 0
    breached: int = 0
    lead_ids: set[str] = field(default_factory=set)
    open_lead_ids: set[str] = field(default_factory=set)

    @property
    def leads(self) -> int:
        return len(self.lead_ids)

    @property
    def open_leads(self) -> int:
        return len(self.open_lead_ids)

    @property
    def decided(self) -> int:
        return self.met + self.met_late + self.breached

    @property
    def on_time_share(self) -> float | None:
        return self.met / self.decided if self.decided else None

    def add(self, lead_id: str, state: str) -> None:
        self.lead_ids.add(lead_id)
        if state == RuleState.MET:
            self.met += 1
        elif state == RuleState.MET_LATE:
            self.met_late += 1
        elif state == RuleState.BREACHED:
            self.breached += 1
        elif state in _OPEN_STATES:
            self.open_lead_ids.add(lead_id)


#: A segment's (delivered, quota, projected — None while too early —, below pace).
Pace = tuple[int, int, int | None, bool]


@dataclass
class MarketingFigures:
    month: str
    quota: int
    delivered: int
    #: None while too little of the month has passed to project (``day`` of ``days``).
    projected: int | None
    pace_share: float | None
    below_pace: bool
    incomplete: list[tuple[str, str, list[str]]]  # lead id, name, missing fields
    incomplete_total: int
    returns_by_source: dict[str, Counter[str]]
    #: Per team with a quota.
    teams: dict[str, Pace] = field(default_factory=dict)
    #: Per lead source with a quota.
    sources: dict[str, Pace] = field(default_factory=dict)
    day: int = 1
    days: int = 30


@dataclass
class Report:
    generated_at: datetime
    by_rep: dict[str, Compliance] = field(default_factory=dict)
    by_team: dict[str, Compliance] = field(default_factory=dict)
    by_policy: dict[str, Compliance] = field(default_factory=dict)
    marketing: MarketingFigures | None = None
