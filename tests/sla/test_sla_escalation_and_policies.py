"""Escalation levels and repeats after a breach; choosing the policy for a lead."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.sla.sla_factories import (
    AMER,
    DEFAULT,
    ESCALATION,
    HOT,
    NEW_YORK,
    RULES,
    call,
    lead,
    local,
)
from worker.sla import (
    BusinessSpan,
    EscalationLevel,
    EscalationPolicy,
    Policy,
    PolicyMatch,
    Rule,
    evaluate_lead,
    select_policy,
)

ONE_HOUR = Policy(name="one-hour", first_touch=BusinessSpan(time=timedelta(hours=1)))
FRIDAY_1630 = local(NEW_YORK, 2026, 1, 9, 16, 30)
BREACH = local(NEW_YORK, 2026, 1, 12, 9, 30)


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    return local(NEW_YORK, 2026, 1, day, hour, minute)


@pytest.mark.parametrize(
    ("now", "levels", "repeat", "next_at"),
    [
        (ny(12, 9, 30), [0], 0, ny(12, 11, 30)),  # at the breach: the rep, manager in 2h
        (ny(12, 12, 0), [0, 1], 0, ny(13, 9, 30)),  # manager's digest; channel after 1 day
        # All levels; the manager's first repeat a business day after their level fell due.
        (ny(13, 10, 0), [0, 1, 2], 0, ny(13, 11, 30)),
        (ny(15, 9, 30), [0, 1, 2], 2, ny(15, 11, 30)),  # two repeats, exactly on the second
        # Saturday: three repeats; the next skips the weekend and Martin Luther King Day.
        (ny(17, 10, 0), [0, 1, 2], 3, ny(20, 9, 30)),
    ],
)
def test_escalation_levels_fall_due_in_business_time_and_repeat_daily(
    now: datetime, levels: list[int], repeat: int, next_at: datetime
) -> None:
    evaluation = evaluate_lead(lead(FRIDAY_1630), [], ONE_HOUR, AMER, RULES, ESCALATION, now)
    (escalation,) = evaluation.escalations
    assert escalation.rule is Rule.FIRST_TOUCH
    assert escalation.breached_at == BREACH
    assert [step.level for step in escalation.steps_due] == levels
    assert escalation.steps_due[-1].notify == ESCALATION.levels[levels[-1]].notify
    assert escalation.repeat == repeat
    assert escalation.next_at == next_at
    assert evaluation.next_check_at == next_at


def test_every_level_repeats_on_its_own_interval_while_the_breach_lasts() -> None:
    # Once the manager is paged, the rep (whose lead it is) is still reminded every day.
    evaluation = evaluate_lead(lead(FRIDAY_1630), [], ONE_HOUR, AMER, RULES, ESCALATION, ny(15, 10))
    steps = evaluation.escalations[0].steps_due
    assert [(s.level, s.repeat) for s in steps] == [(0, 3), (1, 2), (2, 2)]
    assert [s.last_due_at for s in steps] == [ny(15, 9, 30), ny(14, 11, 30), ny(15, 9, 30)]


def test_a_level_may_repeat_on_an_interval_of_its_own() -> None:
    hourly_rep = EscalationPolicy(
        levels=(
            EscalationLevel(BusinessSpan(), ("rep",), BusinessSpan(time=timedelta(hours=1))),
            EscalationLevel(BusinessSpan(time=timedelta(hours=2)), ("manager",)),
        ),
        repeat_every=BusinessSpan(days=1),
    )
    evaluation = evaluate_lead(
        lead(FRIDAY_1630), [], ONE_HOUR, AMER, RULES, hourly_rep, ny(12, 12, 45)
    )
    (escalation,) = evaluation.escalations
    assert [(s.level, s.repeat) for s in escalation.steps_due] == [(0, 3), (1, 0)]
    assert escalation.steps_due[0].last_due_at == ny(12, 12, 30)
    assert escalation.next_at == ny(12, 13, 30)  # the rep's next hourly reminder


def test_escalation_step_due_times() -> None:
    evaluation = evaluate_lead(lead(FRIDAY_1630), [], ONE_HOUR, AMER, RULES, ESCALATION, ny(14, 9))
    assert [s.due_at for s in evaluation.escalations[0].steps_due] == [
        BREACH,
        ny(12, 11, 30),
        ny(13, 9, 30),
    ]


def test_without_repeat_the_last_level_is_the_end() -> None:
    once = EscalationPolicy(levels=ESCALATION.levels)
    evaluation = evaluate_lead(lead(FRIDAY_1630), [], ONE_HOUR, AMER, RULES, once, ny(20, 9))
    assert evaluation.escalations[0].repeat == 0
    assert evaluation.escalations[0].next_at is None
    assert evaluation.next_check_at is None


def test_hourly_repeat_counts_business_hours_only() -> None:
    hourly = EscalationPolicy(
        levels=(EscalationLevel(BusinessSpan(), ("rep",)),),
        repeat_every=BusinessSpan(time=timedelta(hours=1)),
    )
    # Breach Monday 09:30; Tuesday 09:45 is 7.5 + 0.75 business hours later.
    evaluation = evaluate_lead(lead(FRIDAY_1630), [], ONE_HOUR, AMER, RULES, hourly, ny(13, 9, 45))
    assert evaluation.escalations[0].repeat == 8
    assert evaluation.escalations[0].next_at == ny(13, 10, 30)


def test_a_late_touch_ends_the_escalation() -> None:
    touches = [call(ny(12, 14))]
    evaluation = evaluate_lead(
        lead(FRIDAY_1630), touches, ONE_HOUR, AMER, RULES, ESCALATION, ny(13, 12)
    )
    assert evaluation.escalations == ()
    assert evaluation.rules[0].state.value == "met_late"


@pytest.mark.parametrize(
    ("priority", "score", "expected"),
    [
        ("high", 90, "hot"),
        ("high", 80, "hot"),  # score_min is inclusive
        ("high", 79.9, "warm"),
        ("high", None, "default"),  # no score: a score range cannot match
        ("low", 95, "default"),
        ("medium", 50, "warm"),
        ("medium", 60, "warm"),  # score_max is inclusive
        ("medium", 61, "default"),
    ],
)
def test_policy_selection_first_match_wins_with_score_ranges(
    priority: str, score: float | None, expected: str
) -> None:
    warm = Policy(name="warm", match=PolicyMatch(score_min=40, score_max=60))
    warm_high = Policy(name="warm", match=PolicyMatch(priorities=frozenset({"high"}), score_min=40))
    policies = [HOT, warm_high, warm, DEFAULT]
    assert (
        select_policy(lead(FRIDAY_1630, priority=priority, score=score), policies).name == expected
    )


def test_policy_selection_by_source_and_stage() -> None:
    webinar = Policy(
        name="webinar",
        match=PolicyMatch(sources=frozenset({"webinar"}), lifecycle_stages=frozenset({"mql"})),
    )
    base = lead(FRIDAY_1630)
    assert select_policy(base, [webinar, DEFAULT]).name == "default"
    from dataclasses import replace

    matching = replace(base, source="webinar", lifecycle_stage="mql")
    assert select_policy(matching, [webinar, DEFAULT]).name == "webinar"


def test_no_matching_policy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no policy"):
        select_policy(lead(FRIDAY_1630, priority="low"), [HOT])
