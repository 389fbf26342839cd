"""Which notifications a verdict causes, and their dedup keys (pure, table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.config import Team
from worker.notices import NoticeKind
from worker.pipeline.notifications import LeadFacts, drafts_for, resolve_recipient
from worker.sla import (
    BusinessCalendar,
    Escalation,
    EscalationPolicy,
    EscalationStep,
    LeadEvaluation,
    Rule,
    RuleResult,
    RuleState,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DEADLINE = NOW - timedelta(hours=3)
TEAM = Team("sales", BusinessCalendar.always_open(), "Boss@Example.com", "#sales-esc")
FACTS = LeadFacts("42", "Maria Lopez", "Nordwind", "HIGH", None, "Lena@Example.com", "Lena F")
POLICY = EscalationPolicy()
BREACH, ESCALATION = NoticeKind.BREACH, NoticeKind.ESCALATION
RESOLVED, WARNING = NoticeKind.RESOLVED, NoticeKind.WARNING


def _result(state: RuleState, rule: Rule = Rule.FIRST_TOUCH) -> RuleResult:
    return RuleResult(rule, state, NOW - timedelta(hours=4), DEADLINE, None, None, "no touch yet")


def _evaluation(*results: RuleResult, escalations: tuple[Escalation, ...] = ()) -> LeadEvaluation:
    return LeadEvaluation("42", "hot", results, escalations, False, None, None)


def _breach(levels: int, repeats: tuple[int, ...] = ()) -> Escalation:
    """``levels`` levels due an hour apart; level i repeated ``repeats[i]`` times, daily."""
    notify = [("rep",), ("manager",), ("channel",)]
    steps = []
    for i in range(levels):
        due = DEADLINE + timedelta(hours=i)
        repeat = repeats[i] if i < len(repeats) else 0
        latest = due + timedelta(days=repeat) if repeat else None
        steps.append(EscalationStep(i, due, notify[i], repeat, latest))
    return Escalation(Rule.FIRST_TOUCH, DEADLINE, tuple(steps), None)


def test_recipients_resolve_to_outbox_addresses() -> None:
    assert resolve_recipient("rep", FACTS, TEAM) == "email:lena@example.com"
    assert resolve_recipient("manager", FACTS, TEAM) == "email:boss@example.com"
    assert resolve_recipient("channel", FACTS, TEAM) == "channel:#sales-esc"
    assert resolve_recipient("channel:#vip", FACTS, TEAM) == "channel:#vip"
    assert resolve_recipient("cro@example.com", FACTS, TEAM) == "email:cro@example.com"


def test_a_rep_without_email_falls_back_to_the_manager() -> None:
    facts = LeadFacts("42", "Maria", None, None, None, None, "unknown")
    assert resolve_recipient("rep", facts, TEAM) == "email:boss@example.com"


def test_a_warning_goes_to_the_rep() -> None:
    (draft,) = drafts_for(_evaluation(_result(RuleState.WARNING)), FACTS, TEAM, POLICY, {})
    assert (draft.kind, draft.recipient, draft.level) == (WARNING, "email:lena@example.com", 0)


def test_each_due_level_is_its_own_notification() -> None:
    drafts = drafts_for(
        _evaluation(_result(RuleState.BREACHED), escalations=(_breach(3),)), FACTS, TEAM, POLICY, {}
    )
    assert [(d.kind, d.recipient) for d in drafts] == [
        (BREACH, "email:lena@example.com"),
        (ESCALATION, "email:boss@example.com"),
        (ESCALATION, "channel:#sales-esc"),
    ]
    assert len({d.dedup_key for d in drafts}) == 3


def test_the_same_verdict_gives_the_same_keys() -> None:
    evaluation = _evaluation(_result(RuleState.BREACHED), escalations=(_breach(2),))
    first = [d.dedup_key for d in drafts_for(evaluation, FACTS, TEAM, POLICY, {})]
    again = [d.dedup_key for d in drafts_for(evaluation, FACTS, TEAM, POLICY, {})]
    assert first == again


def test_notices_already_written_are_not_drafted_again() -> None:
    evaluation = _evaluation(_result(RuleState.BREACHED), escalations=(_breach(3),))
    drafts = drafts_for(evaluation, FACTS, TEAM, POLICY, {})
    written = {drafts[0].dedup_key, drafts[2].dedup_key}
    (new,) = drafts_for(evaluation, FACTS, TEAM, POLICY, {}, written=written)
    assert new == drafts[1]


def test_each_level_s_latest_repeat_is_a_new_notification_for_its_recipients() -> None:
    # The rep, whose lead it is, keeps being reminded after the manager was paged. Only each
    # level's latest occurrence is drafted: a pass that finds a level already repeated (its
    # first pass, or no worker ran meanwhile) says so once; a running worker wrote the level's
    # first notice when it fell due.
    drafts = drafts_for(
        _evaluation(_result(RuleState.BREACHED), escalations=(_breach(2, repeats=(2, 1)),)),
        FACTS,
        TEAM,
        POLICY,
        {},
    )
    assert [(d.recipient, d.dedup_key.split("|")[5], d.since) for d in drafts] == [
        ("email:lena@example.com", "2", DEADLINE + timedelta(days=2)),
        ("email:boss@example.com", "1", DEADLINE + timedelta(days=1, hours=1)),
    ]


def test_resolved_only_for_the_deadline_that_was_announced() -> None:
    late = _evaluation(_result(RuleState.MET_LATE))
    (draft,) = drafts_for(late, FACTS, TEAM, POLICY, {"first_touch": DEADLINE})
    assert draft.kind == RESOLVED
    assert drafts_for(late, FACTS, TEAM, POLICY, {"first_touch": DEADLINE - timedelta(1)}) == []
    assert drafts_for(late, FACTS, TEAM, POLICY, {}) == []
    quiet = EscalationPolicy(send_resolved=False)
    assert drafts_for(late, FACTS, TEAM, quiet, {"first_touch": DEADLINE}) == []
