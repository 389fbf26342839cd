"""A rep reminder's *Snooze* (issue 17, part 3), the pure parts: which reminders a snooze holds
back (``drafts_for``), when a snooze ends (``snoozed_until``), the buttons a reminder carries
and the message once one is clicked (``messages``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.test_notifications import (
    BREACH,
    DEADLINE,
    ESCALATION,
    FACTS,
    POLICY,
    TEAM,
    WARNING,
    _breach,
    _evaluation,
    _result,
)
from worker.config import CalendarConfig
from worker.notices import Notice, NoticeKind, breach_reference
from worker.pipeline.notifications import drafts_for
from worker.pipeline.slack_actions import snoozed_until
from worker.sla import RuleState
from worker.slack.messages import (
    CONTROLS_CHARS,
    MAX_BLOCKS,
    MAX_MESSAGE_CHARS,
    SNOOZE_1H,
    SNOOZE_TOMORROW,
    TOUCHED,
    as_plain_text,
    render_notices,
    snooze_note,
    with_reminder_note,
)

RULE = "first_touch"


def _kinds(snoozed: dict[tuple[str, datetime], datetime]) -> list[tuple[NoticeKind, int]]:
    """What a breach due at every level (rep, manager, channel) drafts under ``snoozed``."""
    evaluation = _evaluation(_result(RuleState.BREACHED), escalations=(_breach(3),))
    drafts = drafts_for(evaluation, FACTS, TEAM, POLICY, {}, snoozed=snoozed)
    return [(d.kind, d.level) for d in drafts]


def test_a_snooze_holds_back_only_the_reps_reminder_due_inside_it() -> None:
    everything = [(BREACH, 0), (ESCALATION, 1), (ESCALATION, 2)]
    # no snooze: the rep's reminder and both levels above
    assert _kinds({}) == everything
    # the rep's reminder fell due (at the deadline) inside the snooze: held; levels 1 and 2
    # are never held back by a rep's snooze
    assert _kinds({(RULE, DEADLINE): DEADLINE + timedelta(hours=1)}) == everything[1:]
    # the snooze ended at the moment it fell due: drafted
    assert _kinds({(RULE, DEADLINE): DEADLINE}) == everything
    # a snooze of another breach of the lead (an earlier deadline) holds nothing back
    assert _kinds({(RULE, DEADLINE - timedelta(days=1)): DEADLINE + timedelta(days=1)}) == (
        everything
    )
    # a snooze of another rule holds nothing back
    assert _kinds({("follow_up", DEADLINE): DEADLINE + timedelta(days=1)}) == everything


def test_a_snooze_holds_back_a_warning_to_the_rep() -> None:
    evaluation = _evaluation(_result(RuleState.WARNING))
    (draft,) = drafts_for(evaluation, FACTS, TEAM, POLICY, {})
    assert draft.kind is WARNING
    later = draft.since + timedelta(minutes=1)
    assert drafts_for(evaluation, FACTS, TEAM, POLICY, {}, snoozed={(RULE, DEADLINE): later}) == []


BERLIN = CalendarConfig(timezone="Europe/Berlin", hours={"mon-fri": "09:00-17:00"}).to_engine(
    "berlin", "Europe/Berlin"
)
#: Friday 27 Nov 2026, 16:30 in Berlin.
FRIDAY_1630 = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
MONDAY_0900 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_a_snooze_ends_in_working_hours() -> None:
    hour = timedelta(hours=1)
    friday_1000 = FRIDAY_1630 - timedelta(hours=6, minutes=30)
    thursday_0930 = FRIDAY_1630 - timedelta(days=1, hours=7)
    sunday_2330 = MONDAY_0900 - timedelta(hours=9, minutes=30)
    cases = [
        # an hour at Friday 16:30 ends after closing: Monday's opening
        (SNOOZE_1H, FRIDAY_1630, MONDAY_0900),
        # an hour at Friday 10:00 ends at 11:00
        (SNOOZE_1H, friday_1000, friday_1000 + hour),
        # until tomorrow on a Friday: Monday's opening
        (SNOOZE_TOMORROW, FRIDAY_1630, MONDAY_0900),
        # until tomorrow on a Thursday morning: Friday 09:00
        (SNOOZE_TOMORROW, thursday_0930, MONDAY_0900 - timedelta(days=3)),
        # until tomorrow at Sunday 23:30 in Berlin: Monday's opening (tomorrow is Monday)
        (SNOOZE_TOMORROW, sunday_2330, MONDAY_0900),
        # until tomorrow at Monday 00:30 in Berlin: Tuesday's opening, not today's
        (SNOOZE_TOMORROW, sunday_2330 + hour, MONDAY_0900 + timedelta(days=1)),
    ]
    for action_id, now, expected in cases:
        assert snoozed_until(action_id, now, BERLIN) == expected, (action_id, now)


def _notice(kind: NoticeKind, lead_id: str = "1001", minutes: int = 0) -> Notice:
    return Notice(
        kind=kind,
        rule=RULE,
        lead_id=lead_id,
        lead_name=f"Maria Lopez {lead_id}",
        company="Nordwind GmbH",
        priority="HIGH",
        record_url=f"https://app.hubspot.com/contacts/1/record/0-1/{lead_id}",
        deadline_at=DEADLINE + timedelta(minutes=minutes),
        detail="no touch before the deadline",
        level=0 if kind is not NoticeKind.ESCALATION else 1,
        policy="hot",
        rep_name="Lena Fischer",
        timezone="Europe/Berlin",
    )


def _snooze_values(blocks: list[dict[str, object]]) -> list[tuple[str, str]]:
    return [
        (str(e["action_id"]), str(e["value"]))
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]  # type: ignore[attr-defined]
    ]


def test_a_reminder_carries_snooze_buttons_and_other_notices_none() -> None:
    reference = breach_reference("1001", RULE, DEADLINE)
    for kind in (NoticeKind.BREACH, NoticeKind.WARNING):
        message = render_notices([_notice(kind)])
        assert _snooze_values(message.blocks) == [
            (TOUCHED, reference),
            (SNOOZE_1H, reference),
            (SNOOZE_TOMORROW, reference),
        ]
        assert "[Logged a touch] [Snooze 1 h] [Snooze until tomorrow]" in as_plain_text(message)
    for kind in (NoticeKind.ESCALATION, NoticeKind.RESOLVED, NoticeKind.RECYCLED):
        assert _snooze_values(render_notices([_notice(kind)]).blocks) == []


def test_a_list_has_buttons_under_each_reminder_while_there_is_room() -> None:
    two = render_notices([_notice(NoticeKind.BREACH, "1"), _notice(NoticeKind.WARNING, "2", 5)])
    assert [v.split("|")[0] for _, v in _snooze_values(two.blocks)] == ["1"] * 3 + ["2"] * 3
    # 40 reminders: the buttons take no line's place; the first lines get them while the
    # message stays within Slack's 50 blocks and the size budget, the rest have none
    many = render_notices([_notice(NoticeKind.BREACH, str(i), i) for i in range(40)])
    assert len(many.blocks) <= MAX_BLOCKS
    assert len([b for b in many.blocks[1:] if b["type"] == "section"]) == 40
    with_buttons = [v.split("|")[0] for _, v in _snooze_values(many.blocks)][::3]
    assert 0 < len(with_buttons) < 40
    assert with_buttons == [str(i) for i in range(len(with_buttons))]
    text = sum(len(b["text"]["text"]) for b in many.blocks if b["type"] == "section")
    assert text + CONTROLS_CHARS * len(with_buttons) <= MAX_MESSAGE_CHARS


def test_the_snoozed_line_shows_who_and_until_when_in_place_of_its_buttons() -> None:
    message = render_notices([_notice(NoticeKind.BREACH, "1"), _notice(NoticeKind.BREACH, "2", 5)])
    reference = breach_reference("1", RULE, DEADLINE)
    note = snooze_note("Lena Fischer", MONDAY_0900, "Europe/Berlin")
    assert note.startswith(":zzz: Snoozed until Mon 30 Nov 09:00 CET by Lena Fischer.")
    assert "the manager is still told on the escalation schedule" in note
    as_slack_holds_it = [{**b, "block_id": f"b{i}"} for i, b in enumerate(message.blocks)]
    updated = with_reminder_note(as_slack_holds_it, reference, note)
    assert updated is not None
    assert [v.split("|")[0] for _, v in _snooze_values(updated)] == ["2"] * 3
    assert {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]} in updated
    assert all("block_id" not in b for b in updated)
    assert len(updated) == len(message.blocks)
    assert (
        with_reminder_note(as_slack_holds_it, breach_reference("9", RULE, DEADLINE), note) is None
    )
