"""Calendars, leads and touches the SLA engine tests share: realistic, small, built once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from worker.sla import (
    BusinessCalendar,
    BusinessSpan,
    EscalationLevel,
    EscalationPolicy,
    FollowUp,
    Lead,
    Policy,
    PolicyMatch,
    StatusChange,
    Touch,
    TouchRules,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

# The admin's example: split shift with a lunch break, Berlin public holidays.
EMEA = BusinessCalendar(
    name="emea",
    timezone="Europe/Berlin",
    weekly_hours={day: [(9 * 60, 12 * 60 + 30), (13 * 60 + 30, 17 * 60 + 30)] for day in range(5)},
    holidays_country="DE",
    holidays_subdivision="BE",
)
AMER = BusinessCalendar(
    name="amer",
    timezone="America/New_York",
    weekly_hours={day: [(9 * 60, 17 * 60)] for day in range(5)},
    holidays_country="US",
)
ALWAYS = BusinessCalendar.always_open()
CALENDARS = (EMEA, AMER, ALWAYS)

REP = "rep-1"
OTHER_REP = "rep-2"
RULES = TouchRules(min_call=timedelta(minutes=1))
ESCALATION = EscalationPolicy(
    levels=(
        EscalationLevel(BusinessSpan(), ("rep",)),
        EscalationLevel(BusinessSpan(time=timedelta(hours=2)), ("manager",)),
        EscalationLevel(BusinessSpan(days=1), ("channel:#sales-escalations",)),
    ),
    repeat_every=BusinessSpan(days=1),
)

HOT = Policy(
    name="hot",
    match=PolicyMatch(priorities=frozenset({"high"}), score_min=80),
    first_touch=BusinessSpan(time=timedelta(hours=1)),
    warn_before=BusinessSpan(time=timedelta(minutes=15)),
    follow_up=FollowUp(touches=6, within=BusinessSpan(days=10), max_gap=BusinessSpan(days=2)),
    min_time_spent=timedelta(minutes=20),
    min_open=BusinessSpan(days=14),
    recycle_after=BusinessSpan(days=21),
    pause_statuses=frozenset({"BAD_TIMING"}),
    return_statuses=frozenset({"UNQUALIFIED", "RECYCLED"}),
)
DEFAULT = Policy(name="default", first_touch=BusinessSpan(time=timedelta(hours=4)))


def local(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    """A wall-clock time in ``zone`` as the aware UTC instant the engine works with."""
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def lead(
    assigned_at: datetime,
    *,
    owner: str | None = REP,
    status: str | None = None,
    history: tuple[tuple[datetime, str | None], ...] = (),
    priority: str | None = "high",
    score: float | None = 90,
) -> Lead:
    return Lead(
        id="L1",
        created_at=assigned_at - timedelta(days=1),
        owner_id=owner,
        assigned_at=assigned_at,
        status=status,
        priority=priority,
        score=score,
        status_history=tuple(StatusChange(at, s) for at, s in history),
    )


def call(
    at: datetime,
    minutes: float = 5,
    owner: str | None = REP,
    direction: str | None = None,
    status: str | None = "COMPLETED",
) -> Touch:
    return Touch(at, "call", owner, timedelta(minutes=minutes), direction, status)


def email(
    at: datetime, owner: str | None = REP, direction: str | None = None, status: str | None = "SENT"
) -> Touch:
    return Touch(at, "email", owner, timedelta(0), direction, status)
