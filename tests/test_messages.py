"""Slack messages as reps read them: escaping, local times, grouping into one message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.notice_factory import maria_notice
from worker.notices import Notice, NoticeKind
from worker.slack.messages import (
    MAX_BLOCKS,
    MAX_MESSAGE_CHARS,
    MAX_SECTION_CHARS,
    as_plain_text,
    escape,
    format_local,
    render_digest,
    render_notices,
)

BREACH, ESCALATION, WARNING = NoticeKind.BREACH, NoticeKind.ESCALATION, NoticeKind.WARNING
DEADLINE = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)  # Friday 15:30 in Berlin


def _notice(**overrides: Any) -> Notice:
    return maria_notice(**{"deadline_at": DEADLINE, **overrides})


def test_escape_neutralises_slack_control_sequences() -> None:
    assert escape("<!channel> & <@U123>") == "&lt;!channel&gt; &amp; &lt;@U123&gt;"


def test_a_lead_named_like_a_channel_ping_arrives_escaped() -> None:
    message = render_notices([_notice(lead_name="<!channel>", company="A & B <Ltd>")])
    everything = message.text + str(message.blocks)
    assert "<!channel>" not in everything
    assert "&lt;!channel&gt;" in everything
    assert "A &amp; B &lt;Ltd&gt;" in everything


def test_the_deadline_is_shown_in_the_teams_local_time() -> None:
    assert format_local(DEADLINE, "Europe/Berlin") == "Fri 27 Nov 15:30 CET"
    assert format_local(DEADLINE, "America/New_York") == "Fri 27 Nov 09:30 EST"
    assert "Fri 27 Nov 15:30 CET" in render_notices([_notice()]).text


def test_a_single_breach_says_which_lead_which_rule_and_what_to_do() -> None:
    message = render_notices([_notice()])
    text = as_plain_text(message)
    assert "First touch overdue" in text
    assert "Maria Lopez" in text and "Nordwind Logistik GmbH" in text
    assert "priority HIGH" in text
    assert "Call or email the lead now" in text
    assert "<https://app.hubspot.com/contacts/1/record/0-1/42|Maria Lopez>" in str(message.blocks)


def test_a_warning_says_due_not_overdue() -> None:
    text = render_notices([_notice(kind=WARNING)]).text
    assert "due soon" in text and "overdue" not in text


def test_an_escalation_names_the_owner() -> None:
    text = as_plain_text(render_notices([_notice(kind=ESCALATION, level=1)]))
    assert "Escalation" in text and "owner Lena Fischer" in text


def test_several_leads_for_one_rep_are_one_message_oldest_deadline_first() -> None:
    notices = [
        _notice(lead_id=str(i), lead_name=f"Lead {i}", deadline_at=DEADLINE - timedelta(hours=i))
        for i in range(3)
    ]
    message = render_notices(notices)
    text = as_plain_text(message)
    assert "3 leads need attention: 3 overdue" in text.splitlines()[0]
    assert text.index("Lead 2") < text.index("Lead 1") < text.index("Lead 0")


def test_a_long_list_stays_within_slack_limits_and_counts_the_rest() -> None:
    notices = [_notice(lead_id=str(i), lead_name="x" * 500) for i in range(120)]
    message = render_notices(notices)
    assert len(message.blocks) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in message.blocks if "text" in b)
    # The whole message stays under the size Slack refuses (msg_blocks_too_long near 13k).
    assert len(str(message.blocks)) < MAX_MESSAGE_CHARS + 2000
    listed = sum(1 for b in message.blocks[1:] if b["type"] == "section")
    assert 0 < listed <= 40
    assert f"and {120 - listed} more" in as_plain_text(message)


def test_a_notice_survives_the_outbox_round_trip() -> None:
    notice = _notice()
    assert Notice.from_payload(notice.to_payload()) == notice


def test_an_escalation_tells_the_manager_what_to_do_with_the_rep_escaped() -> None:
    message = render_notices([_notice(kind=ESCALATION, level=1, rep_name="<!here> Lena")])
    assert "<!here>" not in message.text + str(message.blocks)
    assert "Check in with &lt;!here&gt; Lena" in str(message.blocks)


def test_a_digest_groups_by_rep_oldest_first_with_counts_per_rule() -> None:
    notices = [
        _notice(lead_id="1", lead_name="Old", rep_name="Lena", deadline_at=DEADLINE),
        _notice(
            lead_id="2",
            lead_name="New",
            rep_name="Lena",
            deadline_at=DEADLINE + timedelta(hours=1),
            rule="follow_up",
        ),
        _notice(
            lead_id="3",
            lead_name="Sam's",
            rep_name="Sam",
            deadline_at=DEADLINE + timedelta(minutes=30),
        ),
    ]
    (message,) = render_digest(notices, at=DEADLINE + timedelta(hours=2))
    text = as_plain_text(message)
    assert "3 overdue leads across 2 reps" in text
    assert "First touch: 2 · Follow-up touches: 1" in text
    assert text.index("Lena") < text.index("Sam") and text.index("Old") < text.index("New")


def test_two_hundred_leads_still_fit_one_digest_in_compact_lines() -> None:
    notices = [
        _notice(lead_id=str(i), lead_name=f"Lead {i:03d}", rep_name=f"Rep {i % 10}")
        for i in range(200)
    ]
    (message,) = render_digest(notices, at=DEADLINE)
    assert all(f"Lead {i:03d}" in str(message.blocks) for i in range(200))
    assert len(message.blocks) <= MAX_BLOCKS


def test_a_runaway_lead_name_is_clipped_so_a_digest_stays_within_limits() -> None:
    notices = [_notice(lead_id="huge", lead_name="H" * 5000, company="C" * 5000)]
    notices += [_notice(lead_id=str(i), lead_name=f"Lead {i}") for i in range(300)]
    for compact in (False, True):
        chosen = notices if compact else notices[:2]
        for message in render_digest(chosen, at=DEADLINE):
            assert len(message.blocks) <= MAX_BLOCKS
            assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in message.blocks[2:])
            assert sum(len(str(b)) for b in message.blocks) < MAX_MESSAGE_CHARS + 1000
    single = as_plain_text(render_notices(notices[:1]))
    assert "H" * 149 + "…" in single and "H" * 151 not in single
