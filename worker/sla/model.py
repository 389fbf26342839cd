"""The engine's plain data: leads, touches, policies and the SLA state computed for them.

These are the only types that cross the engine's door. They are frozen value objects with no
behaviour beyond small derived properties; this module must never import the ORM, a CRM client or
anything that does I/O, and never read the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from worker.sla.spans import BusinessSpan


class RuleState(StrEnum):
    PENDING = "pending"
    WARNING = "warning"
    BREACHED = "breached"
    MET = "met"
    MET_LATE = "met_late"
    PAUSED = "paused"
    NOT_APPLICABLE = "not_applicable"


class Rule(StrEnum):
    FIRST_TOUCH = "first_touch"
    FOLLOW_UP = "follow_up"
    MAX_GAP = "max_gap"
    MIN_TIME_SPENT = "min_time_spent"
    EARLY_RETURN = "early_return"


@dataclass(frozen=True, slots=True)
class Touch:
    at: datetime
    kind: str  # "call" | "email" | "meeting" | "note" | "task"
    owner_id: str | None
    duration: timedelta = timedelta(0)
    direction: str | None = None  # "outbound" | "inbound" | None (unknown)
    status: str | None = None  # raw CRM status, upper-case: COMPLETED, NO_ANSWER, SENT, BOUNCED…


@dataclass(frozen=True, slots=True)
class StatusChange:
    at: datetime
    status: str | None  # the lead's status from this instant on


@dataclass(frozen=True, slots=True)
class Lead:
    id: str
    created_at: datetime
    owner_id: str | None
    assigned_at: datetime | None  # when the current owner got the lead; first-touch clock start
    status: str | None = None  # current CRM lead status
    lifecycle_stage: str | None = None
    priority: str | None = None
    source: str | None = None
    score: float | None = None
    status_history: tuple[StatusChange, ...] = ()  # oldest first, as observed; may be empty


@dataclass(frozen=True, slots=True)
class TouchRules:
    kinds: frozenset[str] = frozenset({"call", "email", "meeting"})
    outbound_only: bool = True  # inbound calls/emails are not touches (direction None = outbound)
    min_call: timedelta = timedelta(0)  # shorter calls are not touches
    ignored_email_statuses: frozenset[str] = frozenset({"BOUNCED", "FAILED", "SCHEDULED"})


@dataclass(frozen=True, slots=True)
class PolicyMatch:
    """Every given criterion must hold; None = any."""

    priorities: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    lifecycle_stages: frozenset[str] | None = None
    score_min: float | None = None  # inclusive
    score_max: float | None = None  # inclusive


@dataclass(frozen=True, slots=True)
class FollowUp:
    touches: int
    within: BusinessSpan
    max_gap: BusinessSpan | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    match: PolicyMatch = PolicyMatch()
    first_touch: BusinessSpan | None = None
    warn_before: BusinessSpan | None = None
    follow_up: FollowUp | None = None
    min_time_spent: timedelta | None = None  # total call+meeting duration within the window
    min_open: BusinessSpan | None = None
    recycle_after: BusinessSpan | None = None
    pause_statuses: frozenset[str] = frozenset()
    return_statuses: frozenset[str] = frozenset()  # "returned to marketing" (disqualified…)
    #: Recycle a stale lead that never got the follow-up's touches too. By default it is not:
    #: the touches are sales' promise, so it stays with its rep and its breach escalates.
    recycle_untouched: bool = False


@dataclass(frozen=True, slots=True)
class EscalationLevel:
    after: BusinessSpan  # business time after the breach
    notify: tuple[str, ...]  # "rep", "manager", "channel:#name", or an e-mail address
    #: This level's own repeat interval; None: the policy's ``repeat_every``.
    repeat_every: BusinessSpan | None = None


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    levels: tuple[EscalationLevel, ...] = (EscalationLevel(BusinessSpan(), ("rep",)),)
    repeat_every: BusinessSpan | None = None
    send_resolved: bool = True


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: Rule
    state: RuleState
    started_at: datetime | None  # when this rule's clock started
    deadline_at: datetime | None
    warn_at: datetime | None
    met_at: datetime | None  # the instant that satisfied it (touch time), if any
    detail: str  # one short plain phrase for messages, e.g. "4 of 6 touches"


@dataclass(frozen=True, slots=True)
class EscalationStep:
    level: int  # index into EscalationPolicy.levels
    due_at: datetime
    notify: tuple[str, ...]
    #: Whole repeat intervals of this level elapsed since ``due_at`` (0: none, or no repeats).
    repeat: int = 0
    #: When this level's latest notice fell due: ``due_at``, or its ``repeat``-th repeat.
    latest_at: datetime | None = None

    @property
    def last_due_at(self) -> datetime:
        return self.latest_at or self.due_at


@dataclass(frozen=True, slots=True)
class Escalation:
    """One per BREACHED rule."""

    rule: Rule
    breached_at: datetime  # the deadline that passed
    steps_due: tuple[EscalationStep, ...]  # every level whose due_at <= now, in level order
    next_at: datetime | None  # when the next level or any level's next repeat becomes due

    @property
    def repeat(self) -> int:
        """The highest level's repeat count (each level repeats on its own interval)."""
        return self.steps_due[-1].repeat if self.steps_due else 0


@dataclass(frozen=True, slots=True)
class LeadEvaluation:
    lead_id: str
    policy: str
    rules: tuple[RuleResult, ...]  # one per rule the policy defines
    escalations: tuple[Escalation, ...]
    recycle_due: bool
    recycle_reason: str | None
    next_check_at: datetime | None  # earliest instant > now the result can change; None: never


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    text: str
