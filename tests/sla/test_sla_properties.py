"""Properties of business time and of next_check_at, over realistic calendars (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sla.sla_factories import (
    CALENDARS,
    DEFAULT,
    ESCALATION,
    HOT,
    OTHER_REP,
    REP,
    RULES,
    lead,
)
from worker.sla import (
    BusinessCalendar,
    BusinessSpan,
    Lead,
    LeadEvaluation,
    Policy,
    StatusChange,
    Touch,
    evaluate_lead,
)

US = timedelta(microseconds=1)
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=0, max_value=400 * 3600 * 10**6).map(lambda us: us * US)
calendars = st.sampled_from(CALENDARS)
FAST = settings(max_examples=150, deadline=None)


@FAST
@given(calendars, instants, durations)
def test_adding_business_time_then_measuring_it_gives_it_back(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    end = calendar.add(start, duration)
    assert end >= start  # a deadline is never before its start
    assert calendar.between(start, end) == duration
    back = calendar.subtract(end, duration)
    assert back <= start
    assert calendar.between(back, start) == timedelta(0)  # the same business instant
    assert calendar.between(back, end) == duration


@FAST
@given(calendars, instants, instants, durations, durations)
def test_add_is_monotonic_in_both_arguments(
    calendar: BusinessCalendar, a: datetime, b: datetime, d1: timedelta, d2: timedelta
) -> None:
    (a, b), (d1, d2) = sorted((a, b)), sorted((d1, d2))
    assert calendar.add(a, d1) <= calendar.add(b, d1)
    assert calendar.add(a, d1) <= calendar.add(a, d2)


@FAST
@given(calendars, instants, st.integers(0, 30), durations)
def test_advance_is_never_before_its_start(
    calendar: BusinessCalendar, start: datetime, days: int, time: timedelta
) -> None:
    span = BusinessSpan(days=days, time=time)
    end = calendar.advance(start, span)
    assert end >= start
    if days and not time:
        assert calendar.is_open(end)  # whole days land on an open instant
    assert calendar.retreat(end, span) <= end


Scenario = tuple[Lead, list[Touch], Policy, BusinessCalendar, datetime]
touch_kinds = st.sampled_from(["call", "email", "meeting", "note"])


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A lead with touches and status changes, and an instant to judge it at."""
    calendar = draw(calendars)
    assigned = draw(instants)
    offsets = st.integers(min_value=0, max_value=40 * 24 * 3600).map(lambda s: timedelta(seconds=s))
    touches = [
        Touch(
            at=assigned + draw(offsets) - timedelta(hours=draw(st.integers(0, 2))),
            kind=draw(touch_kinds),
            owner_id=draw(st.sampled_from([REP, REP, REP, OTHER_REP])),
            duration=timedelta(minutes=draw(st.integers(0, 15))),
            direction=draw(st.sampled_from([None, "outbound", "inbound"])),
            status=draw(st.sampled_from([None, "SENT", "BOUNCED"])),
        )
        for _ in range(draw(st.integers(0, 8)))
    ]
    now = assigned + draw(offsets) * 2
    changes = sorted(
        (
            assigned + draw(offsets) * draw(st.integers(0, 1)),
            draw(st.sampled_from(["WORKING", "BAD_TIMING", "UNQUALIFIED"])),
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    changes = [(at, status) for at, status in changes if at <= now]
    base = lead(assigned)
    the_lead = replace(
        base,
        status=changes[-1][1] if changes else None,
        status_history=tuple(StatusChange(at, status) for at, status in changes),
    )
    policy = draw(st.sampled_from([HOT, DEFAULT]))
    return the_lead, touches, policy, calendar, now


def evaluate_at(scenario: Scenario, now: datetime) -> LeadEvaluation:
    the_lead, touches, policy, calendar, _ = scenario
    return evaluate_lead(the_lead, touches, policy, calendar, RULES, ESCALATION, now)


def observable(evaluation: LeadEvaluation) -> tuple[object, ...]:
    return (
        evaluation.rules,
        evaluation.escalations,
        evaluation.recycle_due,
        evaluation.recycle_reason,
    )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_next_check_is_never_in_the_past_nor_after_the_next_change(
    scenario: Scenario,
) -> None:
    now = scenario[-1]
    evaluation = evaluate_at(scenario, now)
    check = evaluation.next_check_at
    if check is None:
        far = evaluate_at(scenario, now + timedelta(days=3 * 365))
        assert observable(far) == observable(evaluation)
        return
    assert check > now
    just_before = evaluate_at(scenario, check - US)
    assert just_before == evaluation
