"""What ``/sla`` answers look like: CRM text escaped, every reply within Slack's advised size,
and the lead a user means found from what they typed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.leads import LeadLine
from worker.pipeline.slack_commands import lead_id_from_link
from worker.slack.messages import MAX_TEXT_CHARS
from worker.slack.replies import explain_reply, mine_reply

RECORD = "https://app.hubspot.com/contacts/1/record/0-1/{id}"
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "lead_id"),
    [
        ("https://app.hubspot.com/contacts/1/record/0-1/1001", "1001"),
        ("https://app.hubspot.com/contacts/1/record/0-1/1001/", "1001"),
        ("https://app.hubspot.com/contacts/1/record/0-1/1001?tab=activity", "1001"),
        ("https://app.hubspot.com/contacts/1/record/0-1/1001#notes", "1001"),
        ("https://app.hubspot.com/contacts/2/record/0-1/1001", None),  # another portal
        ("https://app.hubspot.com/contacts/1/record/0-1/", None),  # no id
        ("https://evil.example/?https://app.hubspot.com/contacts/1/record/0-1/1001", None),
    ],
)
def test_a_crm_link_gives_its_lead_id_only_when_made_from_the_record_url(
    url: str, lead_id: str | None
) -> None:
    assert lead_id_from_link(url, RECORD) == lead_id


def test_without_a_record_url_no_link_is_read() -> None:
    assert lead_id_from_link("https://app.hubspot.com/contacts/1/record/0-1/1001", None) is None


def test_a_long_timeline_is_cut_at_whole_lines_and_says_how_much_is_left_out() -> None:
    timeline = "\n".join(f"Tue 24 Nov 10:{i % 60:02d} CET  touch {i}: call" for i in range(400))
    text = explain_reply("1001", timeline)
    assert len(text) <= MAX_TEXT_CHARS
    kept = [line for line in text.splitlines() if "touch" in line]
    assert kept[0].endswith("touch 0: call") and len(kept) < 400
    assert text.endswith(
        f"…and {400 - len(kept)} more lines: `sla-worker explain 1001` prints them all."
    )
    assert text.count("```") == 2  # the code block is closed before the note


def test_crm_text_in_a_timeline_pings_nobody_and_cannot_end_the_code_block() -> None:
    text = explain_reply("1001", "Lead 1001 <!channel> ```*bold*``` & Co")
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&amp; Co" in text
    assert text.count("```") == 2


def line(i: int, state: str = "pending") -> LeadLine:
    return LeadLine(str(i), f"Lead {i}", "<!here> AG", "Lena Fischer", "hot", state, "", NOW)


def test_a_long_list_of_leads_stays_within_slack_s_size_and_counts_the_rest() -> None:
    lines = [line(i) for i in range(25)]
    text = mine_reply(
        lines, total=300, timezone="Europe/Berlin", record_url=RECORD, email="l@x.com", now=NOW
    )
    assert len(text) <= MAX_TEXT_CHARS
    shown = text.count("\n• ")
    assert 0 < shown <= 25
    assert text.endswith(
        f"…and {300 - shown} more: `sla-worker leads --rep l@x.com` lists them all."
    )
    assert "<!here>" not in text


def test_a_breached_lead_says_when_it_was_due_in_the_caller_s_time_zone() -> None:
    text = mine_reply(
        [line(1, "breached")], total=1, timezone="America/New_York", record_url=None,
        email="l@x.com", now=NOW,
    )  # fmt: skip
    assert "*Lead 1* (&lt;!here&gt; AG) · breached · was due Tue 24 Nov 05:00 EST · id `1`" in text
