"""First touch: the deadline from assignment, what counts as a touch, warnings, pauses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.sla.sla_factories import (
    AMER,
    BERLIN,
    DEFAULT,
    EMEA,
    ESCALATION,
    HOT,
    NEW_YORK,
    OTHER_REP,
    REP,
    RULES,
    call,
    email,
    lead,
    local,
)
from worker.sla import (
    BusinessSpan,
    Lead,
    Policy,
    Rule,
    RuleResult,
    RuleState,
    Touch,
    evaluate_lead,
)

ONE_HOUR = Policy(
    name="one-hour",
    first_touch=BusinessSpan(time=timedelta(hours=1)),
    warn_before=BusinessSpan(time=timedelta(minutes=15)),
    pause_statuses=frozenset({"BAD_TIMING"}),
)
FRIDAY_1630 = local(NEW_YORK, 2026, 1, 9, 16, 30)
MONDAY_0930 = local(NEW_YORK, 2026, 1, 12, 9, 30)
MINUTE = timedelta(minutes=1)


def first_touch(
    the_lead: Lead, touches: list[Touch], now: datetime, policy: Policy = ONE_HOUR
) -> RuleResult:
    evaluation = evaluate_lead(the_lead, touches, policy, AMER, RULES, ESCALATION, now)
    return next(r for r in evaluation.rules if r.rule is Rule.FIRST_TOUCH)


def test_first_touch_deadline_skips_the_weekend() -> None:
    result = first_touch(lead(FRIDAY_1630), [], FRIDAY_1630)
    assert result.deadline_at == MONDAY_0930
    assert result.warn_at == local(NEW_YORK, 2026, 1, 12, 9, 15)
    assert result.started_at == FRIDAY_1630
    assert result.state is RuleState.PENDING


def test_first_touch_deadline_skips_weekend_and_holiday() -> None:
    christmas_eve = local(BERLIN, 2026, 12, 24, 17, 0)
    evaluation = evaluate_lead(
        lead(christmas_eve), [], ONE_HOUR, EMEA, RULES, ESCALATION, christmas_eve
    )
    assert evaluation.rules[0].deadline_at == local(BERLIN, 2026, 12, 28, 9, 30)


@pytest.mark.parametrize(
    ("touch_at", "state"),
    [
        (MONDAY_0930 - MINUTE, RuleState.MET),  # one minute before the deadline
        (MONDAY_0930, RuleState.MET),  # at the deadline
        (MONDAY_0930 + MINUTE, RuleState.MET_LATE),  # one minute after
    ],
)
def test_touch_one_minute_before_deadline_is_met_one_after_is_late(
    touch_at: datetime, state: RuleState
) -> None:
    result = first_touch(lead(FRIDAY_1630), [call(touch_at)], MONDAY_0930 + timedelta(hours=2))
    assert result.state is state
    assert result.met_at == touch_at


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (FRIDAY_1630, RuleState.PENDING),
        (local(NEW_YORK, 2026, 1, 12, 9, 14), RuleState.PENDING),
        (local(NEW_YORK, 2026, 1, 12, 9, 15), RuleState.WARNING),  # warn_before 15m
        (MONDAY_0930 - MINUTE, RuleState.WARNING),
        (MONDAY_0930, RuleState.BREACHED),  # breached the instant the deadline passes
    ],
)
def test_untouched_lead_warns_then_breaches(now: datetime, state: RuleState) -> None:
    assert first_touch(lead(FRIDAY_1630), [], now).state is state


@pytest.mark.parametrize(
    ("touch", "why"),
    [
        (email(FRIDAY_1630 + MINUTE, direction="inbound"), "inbound email"),
        (call(FRIDAY_1630 + MINUTE, direction="inbound"), "inbound call"),
        (email(FRIDAY_1630 + MINUTE, status="BOUNCED"), "bounced email"),
        (email(FRIDAY_1630 + MINUTE, status="SCHEDULED"), "scheduled email"),
        (call(FRIDAY_1630 + MINUTE, minutes=0.5), "call shorter than min_call"),
        (call(FRIDAY_1630 + MINUTE, owner=OTHER_REP), "another owner's call"),
        (Touch(FRIDAY_1630 + MINUTE, "note", REP), "a note"),
        (call(FRIDAY_1630 - MINUTE), "a call before the assignment"),
        (call(MONDAY_0930 + timedelta(days=1)), "a call after now"),
    ],
)
def test_activity_that_is_not_a_touch_does_not_stop_the_clock(touch: Touch, why: str) -> None:
    result = first_touch(lead(FRIDAY_1630), [touch], MONDAY_0930)
    assert result.state is RuleState.BREACHED, why


def test_unknown_direction_counts_as_outbound_and_sent_email_counts() -> None:
    touches = [email(FRIDAY_1630 + MINUTE, status="SENT")]
    assert first_touch(lead(FRIDAY_1630), touches, MONDAY_0930).state is RuleState.MET


def test_owner_change_restarts_the_clock() -> None:
    # The first rep called on Friday; the lead moved to REP on Monday 10:00.
    reassigned = local(NEW_YORK, 2026, 1, 12, 10, 0)
    touches = [call(FRIDAY_1630 + MINUTE, owner=OTHER_REP)]
    result = first_touch(lead(reassigned), touches, reassigned + timedelta(minutes=30))
    assert result.deadline_at == reassigned + timedelta(hours=1)
    assert result.state is RuleState.PENDING
    assert first_touch(lead(reassigned), touches, reassigned + timedelta(hours=1)).state is (
        RuleState.BREACHED
    )


def test_a_paused_lead_accrues_no_time() -> None:
    # Paused 10 minutes after assignment and never resumed: no deadline, no breach, no checks.
    paused = lead(
        FRIDAY_1630, status="BAD_TIMING", history=((FRIDAY_1630 + 10 * MINUTE, "BAD_TIMING"),)
    )
    a_month_later = FRIDAY_1630 + timedelta(days=30)
    evaluation = evaluate_lead(paused, [], ONE_HOUR, AMER, RULES, ESCALATION, a_month_later)
    result = evaluation.rules[0]
    assert result.state is RuleState.PAUSED
    assert result.deadline_at is None
    assert evaluation.next_check_at is None
    assert evaluation.escalations == ()


def test_a_finished_pause_extends_the_deadline_by_its_business_time() -> None:
    # Paused Friday 16:40-16:50 (10 business minutes): deadline moves from 09:30 to 09:40.
    history = ((FRIDAY_1630 + 10 * MINUTE, "BAD_TIMING"), (FRIDAY_1630 + 20 * MINUTE, "WORKING"))
    resumed = lead(FRIDAY_1630, status="WORKING", history=history)
    result = first_touch(resumed, [], FRIDAY_1630 + timedelta(hours=1))
    assert result.deadline_at == MONDAY_0930 + 10 * MINUTE
    assert result.warn_at == MONDAY_0930 - 5 * MINUTE


def test_a_pause_over_the_weekend_costs_no_business_time() -> None:
    history = (
        (local(NEW_YORK, 2026, 1, 9, 18, 0), "BAD_TIMING"),
        (local(NEW_YORK, 2026, 1, 11, 12, 0), "WORKING"),
    )
    result = first_touch(lead(FRIDAY_1630, status="WORKING", history=history), [], FRIDAY_1630)
    assert result.deadline_at == MONDAY_0930


def test_a_pause_after_the_breach_does_not_undo_it() -> None:
    paused = lead(FRIDAY_1630, status="BAD_TIMING", history=((MONDAY_0930 + MINUTE, "BAD_TIMING"),))
    assert first_touch(paused, [], MONDAY_0930 + timedelta(hours=1)).state is RuleState.BREACHED


def test_a_paused_status_without_history_counts_from_the_assignment() -> None:
    result = first_touch(
        lead(FRIDAY_1630, status="BAD_TIMING"), [], MONDAY_0930 + timedelta(days=5)
    )
    assert result.state is RuleState.PAUSED


def test_changing_the_policy_recomputes_the_deadline_from_history() -> None:
    the_lead = lead(FRIDAY_1630)
    now = FRIDAY_1630 + timedelta(minutes=5)
    assert first_touch(the_lead, [], now, ONE_HOUR).deadline_at == MONDAY_0930
    four_hours = first_touch(the_lead, [], now, DEFAULT).deadline_at
    assert four_hours == local(NEW_YORK, 2026, 1, 12, 12, 30)


def test_a_lead_without_owner_has_no_clock() -> None:
    evaluation = evaluate_lead(
        lead(FRIDAY_1630, owner=None), [], HOT, AMER, RULES, ESCALATION, MONDAY_0930
    )
    assert {r.state for r in evaluation.rules} == {RuleState.NOT_APPLICABLE}
    assert evaluation.next_check_at is None
    assert not evaluation.recycle_due


def test_unsorted_touches_are_judged_in_time_order() -> None:
    late, early = call(MONDAY_0930 + MINUTE), call(MONDAY_0930 - MINUTE)
    assert (
        first_touch(lead(FRIDAY_1630), [late, early], MONDAY_0930 + timedelta(hours=1)).met_at
        == early.at
    )


def test_next_check_is_the_warning_then_the_deadline() -> None:
    evaluation = evaluate_lead(
        lead(FRIDAY_1630), [], ONE_HOUR, AMER, RULES, ESCALATION, FRIDAY_1630
    )
    assert evaluation.next_check_at == local(NEW_YORK, 2026, 1, 12, 9, 15)
    warned = evaluate_lead(
        lead(FRIDAY_1630),
        [],
        ONE_HOUR,
        AMER,
        RULES,
        ESCALATION,
        local(NEW_YORK, 2026, 1, 12, 9, 20),
    )
    assert warned.next_check_at == MONDAY_0930


def test_naive_now_or_touch_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        evaluate_lead(
            lead(FRIDAY_1630), [], ONE_HOUR, AMER, RULES, ESCALATION, datetime(2026, 1, 12)
        )
    naive_touch = Touch(datetime(2026, 1, 12, 10), "call", REP)
    with pytest.raises(ValueError):
        evaluate_lead(
            lead(FRIDAY_1630), [naive_touch], ONE_HOUR, AMER, RULES, ESCALATION, MONDAY_0930
        )


def test_result_instants_are_utc_even_when_the_input_is_in_another_zone() -> None:
    # The engine promises aware UTC out; instants copied from the input (the assignment, the
    # touch that met a rule) used to keep the caller's zone, e.g. a database session's.
    assigned = datetime(2026, 1, 12, 10, 0, tzinfo=NEW_YORK)
    touched = datetime(2026, 1, 12, 17, 0, tzinfo=BERLIN)
    evaluation = evaluate_lead(
        lead(assigned), [call(touched)], HOT, AMER, RULES, ESCALATION, assigned + timedelta(days=1)
    )
    first_touch = evaluation.rules[0]
    assert first_touch.started_at == assigned
    assert first_touch.met_at == touched
    instants = [
        at
        for result in evaluation.rules
        for at in (result.started_at, result.deadline_at, result.warn_at, result.met_at)
        if at is not None
    ]
    assert instants and all(at.utcoffset() == timedelta(0) for at in instants)
    assert all(at.tzinfo is UTC for at in instants)
