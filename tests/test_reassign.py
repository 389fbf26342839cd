"""The *Reassign* menu as messages carry it (Slack's limits: 100 options, 75-character labels,
150-character values, 50 blocks, the size of a message), the policy key that keeps the
first-touch clock through a reassignment, and the first assignment the store keeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from tests.e2e.slack_fixtures import EpochClock, running_fake_slack
from tests.notice_factory import maria_notice
from worker.config import parse_config
from worker.crm.records import CrmLead
from worker.errors import ConfigError
from worker.fakes.slack import FakeSlack
from worker.notices import Notice, NoticeKind
from worker.slack.messages import (
    MAX_BLOCKS,
    as_plain_text,
    digest_parts,
    parse_reassign_value,
    reassign_control,
    reassignment_note,
    render_notices,
    with_reassignment,
    with_reminder_note,
)
from worker.store import mirror
from worker.store.models import Lead

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DEADLINE = NOW - timedelta(hours=3)
TEAM = [("Ana Silva", "102"), ("Jonas Weber", "103")]


def _notice(**fields: Any) -> Notice:
    return maria_notice(**{"deadline_at": DEADLINE, **fields})


def _menus(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "reassign"
    ]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    for slack in running_fake_slack("xoxb-test-reassign", EpochClock()):
        slack.add_channel("C1", "sales")
        yield slack


def _post(fake: FakeSlack, blocks: list[dict[str, Any]]) -> None:
    """Slack (the fake, which checks Block Kit's limits) accepts the message."""
    web = WebClient(token="xoxb-test-reassign", base_url=fake.api_url, retry_handlers=[])
    web.chat_postMessage(channel="C1", text="digest", blocks=blocks)


def test_the_menu_lists_teammates_by_name_with_lead_and_owner_in_each_value() -> None:
    menu = reassign_control("42", [("jonas Weber", "103"), ("Ana Silva", "102")])
    assert menu == {
        "type": "static_select",
        "action_id": "reassign",
        "placeholder": {"type": "plain_text", "text": "Reassign to…"},
        "options": [
            {"text": {"type": "plain_text", "text": "Ana Silva"}, "value": "42|102"},
            {"text": {"type": "plain_text", "text": "jonas Weber"}, "value": "42|103"},
        ],
    }
    assert parse_reassign_value("42|103") == ("42", "103")
    assert parse_reassign_value("no bar") is None
    assert parse_reassign_value("42|") is None


def test_the_menu_keeps_within_slack_s_limits() -> None:
    many = [(f"Rep {i:03d} " + "x" * 100, str(1000 + i)) for i in range(130)]
    menu = reassign_control("42", many)
    assert menu is not None
    options = menu["options"]
    assert len(options) == 100  # Slack's limit: the first 100 by name
    assert options[0]["value"] == "42|1000" and options[-1]["value"] == "42|1099"
    assert all(len(o["text"]["text"]) <= 75 for o in options)
    # A value past 150 characters cannot be an option; nobody left to choose: no menu.
    assert reassign_control("4" * 140, [("Ana", "1234567890123")]) is None
    assert reassign_control("42", []) is None


def test_a_reminder_carries_the_menu_next_to_its_buttons_only_for_its_own_leads() -> None:
    message = render_notices([_notice()], teammates={"42": TEAM})
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [
        "touched",
        "snooze_1h",
        "snooze_tomorrow",
        "reassign",
    ]
    assert "[Logged a touch] [Snooze 1 h] [Snooze until tomorrow] [Reassign to… ▾]" in (
        as_plain_text(message)
    )
    assert _menus(render_notices([_notice()], teammates={"43": TEAM}).blocks) == []
    assert _menus(render_notices([_notice()]).blocks) == []
    # Not on news that asks nothing of the rep.
    resolved = render_notices([_notice(kind=NoticeKind.RESOLVED)], teammates={"42": TEAM})
    assert _menus(resolved.blocks) == []


def test_a_long_reminder_list_keeps_slack_s_limits_with_menus(fake: FakeSlack) -> None:
    big = [(f"Teammate number {i:02d}", str(200 + i)) for i in range(100)]
    notices = [_notice(lead_id=str(i), lead_name=f"Lead {i:02d}") for i in range(40)]
    message = render_notices(notices, teammates={str(i): big for i in range(40)})
    assert len(message.blocks) <= MAX_BLOCKS
    menus = _menus(message.blocks)
    assert 0 < len(menus) < 40  # as many as fit; the rest have their buttons alone
    assert len([b for b in message.blocks if b["type"] == "actions"]) > len(menus)
    _post(fake, message.blocks)


def test_each_overdue_digest_line_gets_a_menu_under_it() -> None:
    notices = [_notice(kind=NoticeKind.ESCALATION, level=1), _notice(lead_id="43")]
    (part,) = digest_parts(notices, at=NOW, teammates={"42": TEAM, "43": TEAM[:1]})
    blocks = part.message.blocks
    kinds = [b["type"] for b in blocks]
    assert kinds == ["section", "context", "section", "section", "actions", "section", "actions"]
    maria, _ = [b for b in blocks if "accessory" in b]
    assert maria["accessory"]["action_id"] == "acknowledge"  # Acknowledge stays where it was
    assert [[o["value"] for o in m["options"]] for m in _menus(blocks)] == [
        ["42|102", "42|103"],
        ["43|102"],
    ]


def test_a_digest_with_menus_splits_within_50_blocks_and_loses_no_lead(fake: FakeSlack) -> None:
    # 25 short lines fit in one message's size with their menus, not in its 50 blocks.
    short = {"company": None, "record_url": None, "detail": ""}
    notices = [
        _notice(lead_id=str(i), lead_name=f"Lead {i:02d}", rep_name=f"Rep {i % 3}", **short)
        for i in range(25)
    ]
    parts = digest_parts(notices, at=NOW, teammates={str(i): TEAM for i in range(25)})
    assert len(parts) > 1
    assert sorted(i for part in parts for i in part.carries) == list(range(25))
    assert sum(len(_menus(part.message.blocks)) for part in parts) == 25
    for part in parts:
        assert len(part.message.blocks) <= MAX_BLOCKS
        _post(fake, part.message.blocks)


def test_a_digest_too_big_for_menus_keeps_its_acknowledge_buttons(fake: FakeSlack) -> None:
    big = [(f"Teammate number {i:02d}", str(200 + i)) for i in range(100)]
    notices = [_notice(lead_id=str(i), lead_name=f"Lead {i:02d}") for i in range(5)]
    (part,) = digest_parts(notices, at=NOW, teammates={str(i): big for i in range(5)})
    assert _menus(part.message.blocks) == []
    assert len([b for b in part.message.blocks if "accessory" in b]) == 5
    _post(fake, part.message.blocks)


def test_a_reassigned_line_shows_who_and_to_whom_instead_of_its_controls() -> None:
    message = render_notices(
        [_notice(), _notice(lead_id="43", lead_name="Eva Braun")],
        teammates={"42": TEAM, "43": TEAM},
    )
    blocks = [{**b, "block_id": f"b{i}"} for i, b in enumerate(message.blocks)]  # Slack's
    note = reassignment_note("Ana <Silva>", "Mike Manager", NOW, "America/New_York")
    assert note == (
        ":arrows_counterclockwise: Reassigned to Ana &lt;Silva&gt; by Mike Manager, "
        "Tue 24 Nov 07:00 EST."
    )
    updated = with_reassignment(blocks, "42|102", note)
    assert updated is not None and len(updated) == len(blocks)
    assert [[o["value"] for o in m["options"]] for m in _menus(updated)] == [["43|102", "43|103"]]
    assert {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]} in updated
    assert all("block_id" not in b for b in updated)
    assert with_reassignment(blocks, "44|102", note) is None  # no such lead in it
    # A snooze replaces the buttons and the menu alike.
    snoozed = with_reminder_note(blocks, f"43|first_touch|{DEADLINE.isoformat()}", "zz")
    assert snoozed is not None and len(_menus(snoozed)) == 1


def test_the_policy_key_is_checked_by_name() -> None:
    config = {
        "calendars": {"c": {"timezone": "UTC", "hours": {"mon-fri": "09:00-17:00"}}},
        "teams": {"t": {"calendar": "c"}},
        "policies": [{"name": "p", "first_touch": "1h"}],
    }
    assert parse_config(config).policies[0].reassign_restarts_first_touch is True
    config["policies"] = [{"name": "p", "first_touch": "1h", "reassign_restarts_first_touch": "x"}]
    with pytest.raises(ConfigError) as error:
        parse_config(config)
    assert "policies[0].reassign_restarts_first_touch" in str(error.value)


def _crm_lead(owner_id: str | None, assigned_at: datetime | None, modified: datetime) -> CrmLead:
    return CrmLead(
        id="7",
        created_at=NOW - timedelta(days=1),
        modified_at=modified,
        owner_id=owner_id,
        owner_assigned_at=assigned_at,
    )


def test_the_store_keeps_the_first_assignment_until_the_lead_loses_its_owner(
    sessions: sessionmaker[Session],
) -> None:
    first = NOW - timedelta(hours=5)
    steps = [
        (_crm_lead("101", first, NOW - timedelta(hours=5)), first),
        (_crm_lead("102", NOW - timedelta(hours=1), NOW - timedelta(hours=1)), first),
        (_crm_lead(None, None, NOW - timedelta(minutes=30)), None),  # back to marketing
        (_crm_lead("103", NOW, NOW), NOW),  # a new start
    ]
    for crm_lead, expected in steps:
        with sessions.begin() as session:
            mirror.upsert_leads(session, [crm_lead], NOW)
        with sessions() as session:
            lead = session.get(Lead, "7")
            assert lead is not None and lead.first_assigned_at == expected, crm_lead.owner_id
