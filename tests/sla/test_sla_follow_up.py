"""Follow-up window, gaps between touches, time spent, early return and recycling (policy "hot")."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from tests.sla.sla_factories import (
    AMER,
    ESCALATION,
    HOT,
    NEW_YORK,
    RULES,
    call,
    email,
    lead,
    local,
)
from worker.sla import (
    BusinessSpan,
    LeadEvaluation,
    Policy,
    Rule,
    RuleResult,
    RuleState,
    Touch,
    evaluate_lead,
    explain_lead,
)
from worker.sla.model import Lead

MONDAY = local(NEW_YORK, 2026, 1, 12, 10, 0)
# Ten business days later, skipping Martin Luther King Day (19 Jan).
WINDOW_END = local(NEW_YORK, 2026, 1, 27, 10, 0)


def ny(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    return local(NEW_YORK, 2026, month, day, hour, minute)


def evaluate(
    touches: list[Touch], now: datetime, the_lead: Lead | None = None, policy: Policy = HOT
) -> LeadEvaluation:
    return evaluate_lead(the_lead or lead(MONDAY), touches, policy, AMER, RULES, ESCALATION, now)


#: HOT, except that stale leads go back to marketing without the follow-up's six touches.
HOT_RECYCLES_UNTOUCHED = replace(HOT, recycle_untouched=True)


def rule(evaluation: LeadEvaluation, which: Rule) -> RuleResult:
    return next(r for r in evaluation.rules if r.rule is which)


def daily_calls(count: int, first_day: int = 12) -> list[Touch]:
    days = [d for d in range(first_day, 31) if d not in (17, 18, 19, 24, 25)]
    return [call(ny(day, 11)) for day in days[:count]]


def test_the_policy_defines_five_rules_in_order() -> None:
    assert [r.rule for r in evaluate([], MONDAY).rules] == list(Rule)


def test_follow_up_window_is_ten_business_days_skipping_holidays() -> None:
    result = rule(evaluate([], MONDAY), Rule.FOLLOW_UP)
    assert result.deadline_at == WINDOW_END
    assert result.warn_at == WINDOW_END - timedelta(minutes=15)
    assert result.state is RuleState.PENDING
    assert result.detail == "0 of 6 touches"


def test_six_touches_in_the_window_meet_the_follow_up_at_the_sixth() -> None:
    touches = daily_calls(6)
    result = rule(evaluate(touches, WINDOW_END), Rule.FOLLOW_UP)
    assert result.state is RuleState.MET
    assert result.met_at == touches[5].at


def test_five_of_six_touches_at_window_end_is_a_breach() -> None:
    evaluation = evaluate(daily_calls(5), WINDOW_END)
    result = rule(evaluation, Rule.FOLLOW_UP)
    assert result.state is RuleState.BREACHED
    assert result.detail == "5 of 6 touches"
    assert Rule.FOLLOW_UP in {e.rule for e in evaluation.escalations}
    assert rule(
        evaluate(daily_calls(5), WINDOW_END - timedelta(minutes=1)), Rule.FOLLOW_UP
    ).state is (RuleState.WARNING)


def test_a_sixth_touch_after_the_window_is_met_late() -> None:
    touches = [*daily_calls(5), call(ny(28, 11))]
    evaluation = evaluate(touches, ny(28, 12))
    assert rule(evaluation, Rule.FOLLOW_UP).state is RuleState.MET_LATE
    assert Rule.FOLLOW_UP not in {e.rule for e in evaluation.escalations}


def test_max_gap_waits_for_the_first_touch() -> None:
    result = rule(evaluate([], ny(14, 10)), Rule.MAX_GAP)
    assert result.state is RuleState.PENDING
    assert result.deadline_at is None


def test_max_gap_breaches_two_business_days_after_the_last_touch() -> None:
    touches = [call(ny(12, 11))]
    result = rule(evaluate(touches, ny(14, 11)), Rule.MAX_GAP)
    assert result.state is RuleState.BREACHED
    assert result.deadline_at == ny(14, 11)
    pending = rule(evaluate(touches, ny(14, 10)), Rule.MAX_GAP)
    assert pending.state is RuleState.PENDING
    assert pending.deadline_at == ny(14, 11)
    assert rule(evaluate(touches, ny(14, 10, 50)), Rule.MAX_GAP).state is RuleState.WARNING


def test_max_gap_over_a_weekend_and_holiday_is_business_days() -> None:
    # Friday 16 Jan 11:00 + 2 business days = Wednesday 21 Jan (weekend and MLK Day skipped).
    touches = [call(ny(16, 11))]
    assert rule(evaluate(touches, ny(20, 16)), Rule.MAX_GAP).deadline_at == ny(21, 11)


def test_a_gap_closed_late_is_met_late_once_follow_up_is_met() -> None:
    touches = [call(ny(12, 11)), call(ny(15, 11)), *daily_calls(4, first_day=16)]
    result = rule(evaluate(touches, WINDOW_END), Rule.MAX_GAP)
    assert result.state is RuleState.MET_LATE


def test_min_time_spent_is_met_at_the_call_that_reaches_it() -> None:
    touches = daily_calls(6)  # 5 minutes each
    result = rule(evaluate(touches, WINDOW_END), Rule.MIN_TIME_SPENT)
    assert result.state is RuleState.MET
    assert result.met_at == touches[3].at
    assert result.detail == "call+meeting time 30m of 20m"


def test_min_time_spent_short_at_window_end_is_a_breach_and_emails_do_not_count() -> None:
    touches = [*daily_calls(3), email(ny(22, 11)), email(ny(23, 11)), email(ny(26, 11))]
    evaluation = evaluate(touches, WINDOW_END)
    result = rule(evaluation, Rule.MIN_TIME_SPENT)
    assert result.state is RuleState.BREACHED
    assert result.detail == "call+meeting time 15m of 20m"
    assert rule(evaluation, Rule.FOLLOW_UP).state is RuleState.MET


def returned(at: datetime, status: str = "UNQUALIFIED") -> Lead:
    return lead(MONDAY, status=status, history=((MONDAY, "WORKING"), (at, status)))


def test_early_return_is_not_applicable_while_the_lead_is_open() -> None:
    assert rule(evaluate([], MONDAY), Rule.EARLY_RETURN).state is RuleState.NOT_APPLICABLE


def test_return_before_the_minimum_open_time_is_flagged() -> None:
    back = ny(14, 15)
    evaluation = evaluate(daily_calls(2), ny(15, 9), returned(back))
    result = rule(evaluation, Rule.EARLY_RETURN)
    assert result.state is RuleState.BREACHED
    assert result.detail == "returned before the minimum open time"
    (escalation,) = (e for e in evaluation.escalations if e.rule is Rule.EARLY_RETURN)
    assert escalation.breached_at == back
    # The return stopped the other clocks: nothing else pending can breach any more.
    assert rule(evaluation, Rule.FOLLOW_UP).state is RuleState.NOT_APPLICABLE


def test_return_after_the_minimum_open_time_with_too_few_touches_is_flagged() -> None:
    back = ny(3, 12, month=2)
    result = rule(evaluate(daily_calls(4), ny(4, 9, month=2), returned(back)), Rule.EARLY_RETURN)
    assert result.state is RuleState.BREACHED
    assert result.detail == "returned with 4 of 6 touches"


def test_return_after_the_minimum_open_time_with_the_touches_is_met() -> None:
    back = ny(3, 12, month=2)
    result = rule(evaluate(daily_calls(6), ny(4, 9, month=2), returned(back)), Rule.EARLY_RETURN)
    assert result.state is RuleState.MET


def test_recycle_is_due_21_business_days_after_the_window_without_a_touch() -> None:
    touches = daily_calls(6)
    due = AMER.advance(WINDOW_END, BusinessSpan(days=21))
    before = evaluate(touches, due - timedelta(microseconds=1))
    assert not before.recycle_due
    assert before.next_check_at is not None and before.next_check_at <= due
    after = evaluate(touches, due)
    assert after.recycle_due
    assert after.recycle_reason == (
        "no touch for 21 business days after the follow-up window; 6 of 6 touches"
    )


def test_a_stale_lead_without_its_touches_stays_with_sales_and_escalates() -> None:
    # Four of six touches: sales did not keep its promise, so marketing does not get the lead
    # back; the follow-up breach keeps escalating (its repeats) instead of a silent recycle.
    much_later = AMER.advance(WINDOW_END, BusinessSpan(days=40))
    evaluation = evaluate(daily_calls(4), much_later)
    assert not evaluation.recycle_due
    assert rule(evaluation, Rule.FOLLOW_UP).state is RuleState.BREACHED
    (follow_up,) = [e for e in evaluation.escalations if e.rule is Rule.FOLLOW_UP]
    assert follow_up.repeat > 0 and follow_up.next_at is not None
    recycled = evaluate(daily_calls(4), much_later, policy=HOT_RECYCLES_UNTOUCHED)
    assert recycled.recycle_due  # where the agreement says so, it goes back all the same
    assert recycled.recycle_reason is not None and "4 of 6 touches" in recycled.recycle_reason


def test_a_touch_after_the_window_postpones_recycling() -> None:
    touches = [*daily_calls(4), call(ny(3, 11, month=2))]
    due = AMER.advance(ny(3, 11, month=2), BusinessSpan(days=21))
    untouched = HOT_RECYCLES_UNTOUCHED
    assert not evaluate(touches, due - timedelta(seconds=1), policy=untouched).recycle_due
    assert evaluate(touches, due, policy=untouched).recycle_reason == (
        "no touch for 21 business days after the last touch; 5 of 6 touches"
    )


def test_a_paused_lead_is_not_recycled() -> None:
    paused = lead(MONDAY, status="BAD_TIMING", history=((ny(2, 9, month=2), "BAD_TIMING"),))
    assert not evaluate(daily_calls(6), ny(1, 9, month=6), paused).recycle_due
    assert evaluate(daily_calls(6), ny(1, 9, month=6)).recycle_due  # but for the pause


def test_explain_tells_the_story_in_order() -> None:
    touches = [
        call(ny(12, 11)),
        email(ny(12, 12), status="BOUNCED"),
        call(ny(13, 9), owner="rep-2"),
    ]
    timeline = explain_lead(lead(MONDAY), touches, HOT, AMER, RULES, ESCALATION, ny(20, 12))
    texts = [entry.text for entry in timeline]
    assert texts[0].startswith("lead L1 created")
    assert any("policy hot applies (matches priority high, score >= 80)" in t for t in texts)
    assert "call by rep-1 counts as a touch" in texts
    assert "email by rep-1 ignored: e-mail bounced" in texts
    assert "call by rep-2 ignored: by someone other than the lead's current owner" in texts
    assert any(t.startswith("max gap: breached") for t in texts)
    assert any("escalation level 2 notifies manager" in t for t in texts)  # as the README numbers
    assert not any("_" in t.split("now ", 1)[1] for t in texts if ": now " in t)  # no raw states
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)
