"""What one notice says about one lead, independent of who gets it and how: the outbox payload.

A :class:`Notice` is written into the outbox (inside an ``outbox.Envelope``) by a stage and
read back by deliver to render a Slack message. It carries a snapshot of the lead so that a
message rendered later still names the lead as it was judged. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class NoticeKind(StrEnum):
    """What a notice announces, in the order a lead's story goes (``report``: not about a lead)."""

    WARNING = "warning"  # a deadline is near
    BREACH = "breach"  # a deadline passed: the rep hears (escalation level 0)
    ESCALATION = "escalation"  # a breach reached a level above the rep
    RESOLVED = "resolved"  # an announced breach was fixed late ("done, late")
    RECYCLED = "recycled"  # the lead went back to marketing
    REPORT = "report"  # a compliance report for a channel


#: Kinds that announce a breach (to the rep or up the escalation ladder).
OVERDUE = frozenset({NoticeKind.BREACH, NoticeKind.ESCALATION})

RULE_TITLES = {
    "first_touch": "First touch",
    "follow_up": "Follow-up touches",
    "max_gap": "Gap between touches",
    "min_time_spent": "Time spent",
    "early_return": "Early return to marketing",
    "recycle": "Recycled to marketing",
}

RULE_ACTIONS = {
    "first_touch": "Call or email the lead now and log it in the CRM.",
    "follow_up": "Log the next touch (call, email or meeting) in the CRM.",
    "max_gap": "Touch the lead again; the last touch was too long ago.",
    "min_time_spent": "Book a call or meeting: too little time spent with the lead so far.",
    "early_return": "The lead went back to marketing before the agreed minimum.",
    "recycle": "Marketing nurtures it now. If this was a mistake, ask an admin to undo the run.",
}


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    rule: str
    lead_id: str
    lead_name: str
    company: str | None
    priority: str | None
    record_url: str | None
    deadline_at: datetime
    detail: str
    level: int
    policy: str
    rep_name: str
    #: IANA zone the deadline is shown in (the team calendar's; the rep's Slack tz wins later).
    timezone: str
    #: The team whose calendar, manager and channels apply.
    team: str = ""
    #: Held until the recipient's working hours (quiet hours) unless False.
    quiet: bool = True
    #: Set on a fallback copy: who could not be reached, and why (``users_not_found``).
    undeliverable_to: str | None = None
    undeliverable_because: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON. Every field is an immutable scalar, so a shallow copy of the instance's
        fields will do: ``asdict`` (a deep copy) cost a third of the evaluate stage's time per
        notice, a comprehension of ``getattr`` still 5 µs of a first pass's ~7 per lead."""
        data = self.__dict__.copy()  # no __slots__: the fields, in order, and nothing else
        data["kind"] = self.kind.value
        data["deadline_at"] = self.deadline_at.isoformat()
        return data

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Notice:
        values = dict(data)
        values["kind"] = NoticeKind(values["kind"])
        values["deadline_at"] = datetime.fromisoformat(values["deadline_at"])
        return cls(**values)

    @property
    def rule_title(self) -> str:
        return RULE_TITLES.get(self.rule, self.rule.replace("_", " ").capitalize())

    @property
    def action(self) -> str:
        if self.kind is NoticeKind.ESCALATION:
            return (
                f"Check in with {self.rep_name}: get the lead worked today, or reassign it "
                "in the CRM."
            )
        return RULE_ACTIONS.get(self.rule, "Look at the lead in the CRM.")
