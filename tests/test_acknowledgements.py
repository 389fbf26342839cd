"""Acknowledged breaches, the pure parts (issue 17, part 2): which notices an acknowledged breach
still gets, the digest's *Acknowledge* buttons and the line that replaces one, the rep's news,
the breach reference a button carries, and the fake Slack's checks of buttons."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.e2e.slack_fixtures import EpochClock, running_fake_slack
from tests.notice_factory import maria_notice
from worker.config import Team
from worker.fakes.slack import FakeSlack
from worker.notices import BreachRef, Notice, NoticeKind, breach_reference
from worker.pipeline.notifications import LeadFacts, drafts_for
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
from worker.slack.messages import (
    MAX_BLOCKS,
    acknowledgement_note,
    as_plain_text,
    digest_parts,
    render_notices,
    with_acknowledgement,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DEADLINE = NOW - timedelta(hours=3)
TEAM = Team("sales", BusinessCalendar.always_open(), "boss@example.com", "#sales-esc")
FACTS = LeadFacts("42", "Maria Lopez", "Nordwind", "HIGH", None, "lena@example.com", "Lena F")
BREACH, ESCALATION = NoticeKind.BREACH, NoticeKind.ESCALATION
ACKNOWLEDGED = {("first_touch", DEADLINE)}


# -- which notices an acknowledged breach still gets (notifications.drafts_for) --------------------
def _evaluation(*results: RuleResult, breach: Escalation | None = None) -> LeadEvaluation:
    return LeadEvaluation("42", "hot", results, (breach,) if breach else (), False, None, None)


def _result(state: RuleState, rule: Rule = Rule.FIRST_TOUCH) -> RuleResult:
    return RuleResult(rule, state, NOW - timedelta(hours=4), DEADLINE, None, None, "no touch yet")


def _ladder(deadline: datetime = DEADLINE) -> Escalation:
    """Rep, manager, channel an hour apart; the rep reminded twice since, the manager once."""
    steps = (
        EscalationStep(0, deadline, ("rep",), 2, deadline + timedelta(hours=2)),
        EscalationStep(1, deadline + timedelta(hours=1), ("manager",), 1, NOW),
        EscalationStep(2, deadline + timedelta(hours=2), ("channel",), 0, None),
    )
    return Escalation(Rule.FIRST_TOUCH, deadline, steps, None)


def _kinds(acknowledged: set[tuple[str, datetime]], evaluation: LeadEvaluation) -> list[str]:
    drafts = drafts_for(evaluation, FACTS, TEAM, EscalationPolicy(), {}, None, acknowledged)
    return [f"{d.kind}:{d.level}:{d.recipient}" for d in drafts]


def test_an_acknowledged_breach_gets_no_reminder_no_repeat_and_no_next_level() -> None:
    evaluation = _evaluation(_result(RuleState.BREACHED), breach=_ladder())
    # Unacknowledged: every level, as its latest occurrence (the rep's second repeat).
    assert len(_kinds(set(), evaluation)) == 3
    assert _kinds(ACKNOWLEDGED, evaluation) == []


def test_an_acknowledgement_of_an_earlier_breach_does_not_stop_a_new_one() -> None:
    # The owner changed since: a new deadline, a new breach (its dedup keys are new too).
    later = DEADLINE + timedelta(minutes=30)
    evaluation = _evaluation(_result(RuleState.BREACHED), breach=_ladder(later))
    assert len(_kinds(ACKNOWLEDGED, evaluation)) == 3


def test_an_acknowledgement_stops_only_its_own_rule() -> None:
    follow_up = Escalation(Rule.FOLLOW_UP, DEADLINE, _ladder().steps_due, None)
    evaluation = LeadEvaluation(
        "42",
        "hot",
        (_result(RuleState.BREACHED), _result(RuleState.BREACHED, Rule.FOLLOW_UP)),
        (_ladder(), follow_up),
        False,
        None,
        None,
    )
    drafts = drafts_for(evaluation, FACTS, TEAM, EscalationPolicy(), {}, None, ACKNOWLEDGED)
    assert {d.rule for d in drafts} == {"follow_up"} and len(drafts) == 3


def test_an_acknowledged_breach_still_hears_it_was_done_late() -> None:
    met_late = replace(_result(RuleState.MET_LATE), met_at=NOW)
    evaluation = _evaluation(met_late)
    drafts = drafts_for(
        evaluation,
        FACTS,
        TEAM,
        EscalationPolicy(send_resolved=True),
        {"first_touch": DEADLINE},
        {"first_touch": {"email:boss@example.com"}},
        ACKNOWLEDGED,
    )
    assert [(d.kind, d.recipient) for d in drafts] == [
        (NoticeKind.RESOLVED, "email:lena@example.com"),
        (NoticeKind.RESOLVED, "email:boss@example.com"),
    ]


def test_a_warning_of_another_rule_still_goes_out() -> None:
    evaluation = _evaluation(
        _result(RuleState.BREACHED), _result(RuleState.WARNING, Rule.MAX_GAP), breach=_ladder()
    )
    assert _kinds(ACKNOWLEDGED, evaluation) == ["warning:0:email:lena@example.com"]


# -- the breach reference a button carries -------------------------------------------------------
def test_a_breach_reference_reads_back_and_anything_else_is_refused() -> None:
    reference = breach_reference("1001", "first_touch", DEADLINE)
    assert reference == "1001|first_touch|2026-11-24T09:00:00+00:00"
    assert BreachRef.parse(reference) == BreachRef("1001", "first_touch", DEADLINE)
    assert str(BreachRef.parse(reference)) == reference
    for garbled in (
        "",
        "1001",
        "1001|first_touch",
        "1001|first_touch|tomorrow",
        "1001|first_touch|2026-11-24T09:00:00",  # no zone: not one the worker wrote
        "|first_touch|2026-11-24T09:00:00+00:00",
        "1001|first_touch|2026-11-24T09:00:00+00:00|extra",
    ):
        assert BreachRef.parse(garbled) is None, garbled


# -- the digest's buttons ----------------------------------------------------------------------
def _notice(**overrides: Any) -> Notice:
    """An escalation to the manager (level 1), as digest lines are."""
    escalation = {"kind": ESCALATION, "level": 1, "detail": "no touch before the deadline"}
    return maria_notice(**{"deadline_at": DEADLINE, **escalation, **overrides})


def _buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["accessory"]["value"] for b in blocks if "accessory" in b]


def test_each_overdue_digest_line_is_a_section_with_its_acknowledge_button() -> None:
    notices = [
        _notice(),
        _notice(lead_id="43", lead_name="Eva Braun", deadline_at=DEADLINE + timedelta(hours=1)),
        _notice(lead_id="44", lead_name="Sam's lead", rep_name="Sam Ortiz"),
    ]
    (part,) = digest_parts(notices, at=NOW)
    blocks = part.message.blocks
    assert _buttons(blocks) == [
        breach_reference("42", "first_touch", DEADLINE),  # grouped by rep, oldest first
        breach_reference("43", "first_touch", DEADLINE + timedelta(hours=1)),
        breach_reference("44", "first_touch", DEADLINE),
    ]
    maria = next(b for b in blocks if "accessory" in b)
    assert maria["text"]["text"].startswith("• *<https://app.hubspot.com/contacts/1/record/0-1/42|")
    assert maria["accessory"]["action_id"] == "acknowledge"
    assert maria["accessory"]["text"] == {"type": "plain_text", "text": "Acknowledge"}
    text = as_plain_text(part.message)
    assert "*Lena Fischer*: 2 overdue\n• *Maria Lopez* (Nordwind Logistik GmbH)" in text
    assert "no touch before the deadline  [Acknowledge]" in text


def test_a_line_that_announces_no_breach_has_no_button() -> None:
    (part,) = digest_parts([_notice(kind=NoticeKind.RESOLVED)], at=NOW)
    assert _buttons(part.message.blocks) == []


def test_a_digest_with_buttons_splits_into_parts_within_slack_s_limits(fake: FakeSlack) -> None:
    # Short lines: many fit in full, each a block of its own, more than 50 blocks in all.
    short = {"company": None, "record_url": None, "detail": ""}
    notices = [
        _notice(lead_id=str(i), lead_name=f"Lead {i:02d}", rep_name=f"Rep {i % 3}", **short)
        for i in range(50)
    ]
    parts = digest_parts(notices, at=NOW)
    assert len(parts) > 1
    assert sorted(i for part in parts for i in part.carries) == list(range(50))
    fake.add_channel("C1", "sales")
    web = WebClient(token="xoxb-test-ack", base_url=fake.api_url, retry_handlers=[])
    for part in parts:
        blocks = part.message.blocks
        assert len(blocks) <= MAX_BLOCKS
        web.chat_postMessage(channel="C1", text=part.message.text, blocks=blocks)  # accepted
        # A rep's heading never ends a part: it goes with the rep's first line.
        assert "accessory" in blocks[-1]
        # And still accepted with every line acknowledged by someone with a long name.
        note = acknowledgement_note("N" * 200, NOW, "UTC")
        for reference in _buttons(blocks):
            blocks = with_acknowledgement(blocks, reference, note) or []
        web.chat_postMessage(channel="C1", text=part.message.text, blocks=blocks)
    assert sum(len(_buttons(part.message.blocks)) for part in parts) == 50


def test_a_compact_digest_has_no_buttons_and_says_so() -> None:
    notices = [_notice(lead_id=str(i), lead_name=f"Lead {i:03d}") for i in range(200)]
    (part,) = digest_parts(notices, at=NOW)
    assert _buttons(part.message.blocks) == []
    assert "too many leads for Acknowledge buttons" in str(part.message.blocks[1])


def test_an_acknowledged_line_shows_who_and_when_instead_of_its_button() -> None:
    notices = [_notice(), _notice(lead_id="43", lead_name="Eva Braun")]
    (part,) = digest_parts(notices, at=NOW)
    blocks = [{**b, "block_id": f"b{i}"} for i, b in enumerate(part.message.blocks)]  # Slack's
    note = acknowledgement_note("Mike <!channel> Manager", NOW, "America/New_York")
    assert note == (
        ":ballot_box_with_check: Acknowledged by Mike &lt;!channel&gt; Manager, "
        "Tue 24 Nov 07:00 EST"
    )
    updated = with_acknowledgement(blocks, breach_reference("42", "first_touch", DEADLINE), note)
    assert updated is not None and len(updated) == len(blocks)
    assert _buttons(updated) == [breach_reference("43", "first_touch", DEADLINE)]
    (maria,) = [b for b in updated if "Maria Lopez" in str(b.get("text"))]
    assert maria["text"]["text"].endswith("\n" + note) and "accessory" not in maria
    assert all("block_id" not in b for b in updated)  # an updated message takes new ones
    assert with_acknowledgement(blocks, "no|such|breach", note) is None


# -- what the rep reads --------------------------------------------------------------------------
def test_the_rep_reads_who_acknowledged_and_when_in_a_few_words() -> None:
    news = _notice(
        kind=NoticeKind.ACKNOWLEDGED,
        level=0,
        acknowledged_by="Mike Manager",
        acknowledged_at=NOW,
    )
    assert Notice.from_payload(news.to_payload()) == news  # through the outbox and back
    message = render_notices([news])
    assert message.text == (
        "First touch overdue, acknowledged by Mike Manager: Maria Lopez (Nordwind Logistik GmbH), "
        "acknowledged Tue 24 Nov 13:00 CET. No more reminders about this breach. Call or email "
        "the lead now and log it in the CRM."
    )
    line = message.blocks[0]["text"]["text"]
    assert line.startswith(":ballot_box_with_check: First touch overdue, acknowledged by Mike")
    assert "|Maria Lopez>*" in line and "priority" not in line  # short: who and when
    listed = render_notices([news, _notice(kind=BREACH, level=0, lead_id="43")])
    assert "2 leads need attention: 1 overdue, 1 acknowledged" in listed.text


# -- the fake Slack checks buttons as Slack does ---------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    yield from running_fake_slack("xoxb-test-ack", EpochClock())


def _button(**overrides: Any) -> dict[str, Any]:
    button = {
        "type": "button",
        "action_id": "acknowledge",
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "value": "v",
    }
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "a line"},
        "accessory": {**button, **overrides},
    }


@pytest.mark.parametrize(
    "blocks",
    [
        [_button(value="v" * 2001)],  # a button's value: at most 2,000 characters
        [_button(text={"type": "plain_text", "text": "A" * 76})],  # its text: at most 75
        [_button(text={"type": "mrkdwn", "text": "*Ack*"})],  # plain text only
        [_button(action_id="a" * 256)],
        [{**_button(), "block_id": "x"}, {**_button(), "block_id": "x"}],  # unique block_id
    ],
)
def test_the_fake_refuses_a_button_slack_refuses(
    fake: FakeSlack, blocks: list[dict[str, Any]]
) -> None:
    fake.add_channel("C1", "sales")
    web = WebClient(token="xoxb-test-ack", base_url=fake.api_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as caught:
        web.chat_postMessage(channel="C1", text="x", blocks=blocks)
    assert caught.value.response.data["error"] == "invalid_blocks"
    web.chat_postMessage(channel="C1", text="x", blocks=[_button(value="v" * 2000)])


def test_the_fake_clicks_only_a_button_that_was_sent(fake: FakeSlack) -> None:
    fake.add_channel("C1", "sales")
    fake.add_user("U1", "mike@example.com", "Mike")
    web = WebClient(token="xoxb-test-ack", base_url=fake.api_url, retry_handlers=[])
    web.chat_postMessage(channel="C1", text="x", blocks=[_button(value="ref")])
    (message,) = fake.messages
    payload = fake.block_actions_payload("U1", message, "acknowledge", "ref")
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U1"
    assert payload["container"] == {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert payload["channel"] == {"id": "C1", "name": "sales"}
    (action,) = payload["actions"]
    assert (action["type"], action["action_id"], action["value"]) == (
        "button",
        "acknowledge",
        "ref",
    )
    assert action["block_id"] == payload["message"]["blocks"][0]["block_id"]
    assert payload["message"]["ts"] == message.ts and payload["message"]["text"] == "x"
    assert payload["response_url"].startswith(fake.base_url) and payload["trigger_id"]
    with pytest.raises(AssertionError, match="no button"):
        fake.block_actions_payload("U1", message, "acknowledge", "another")
