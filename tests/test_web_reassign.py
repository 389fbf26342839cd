"""The *Reassign* menu of a rep's reminder and of a manager's digest line, end to end (issue 17):
the fake Slack chooses a teammate in the menu of the message it received, signed as Slack signs
it; ``sla-worker web`` queues the choice (Celery, eager here), and the worker writes the new
owner in the fake HubSpot, syncs and evaluates the lead: the first-touch clock restarts at the
new assignment (unless the policy keeps it), the previous owner's pending reminders are
superseded, the new owner is told who handed them the lead, the message is updated in place,
and the choice is audited and shown by ``explain``. Refusals and a CRM that refuses the write
change nothing but the audit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e.web import Web, serving_web
from tests.e2e.world import CONFIG, Clock, World, iso, make_world, outbox_rows
from worker.explain import explain_text
from worker.fakes.slack import PostedMessage
from worker.pipeline.stages import run_once, run_stage
from worker.store.models import Finding, Lead

ADMIN = "ada.admin@example.com"
#: Two teams: Lena and Ana sell in EMEA (Mike manages), Jonas in the US (Sam manages). The rep
#: is reminded of a breach every 30 minutes; the manager gets it in the 09:00/14:00 digest.
TEAMS = (
    CONFIG.replace(
        """teams:
  sales:
    calendar: always
    manager: mike.manager@example.com
    channel: "#sales-escalations"
""",
        """teams:
  sales:
    calendar: always
    manager: mike.manager@example.com
    channel: "#sales-escalations"
    owners: [lena@example.com, ana@example.com]
  us:
    calendar: always
    manager: sam.manager@example.com
""",
    )
    .replace(
        "  - {after: 0m, notify: rep}\n  - {after: 2h, notify: manager}\n",
        "  - {after: 0m, notify: rep, repeat_every: 30m}\n"
        "  - {after: 30m, notify: manager, digest: true}\n",
    )
    .replace(
        "schedules: {sync: 1s, evaluate: 1s, deliver: 1s}",
        'schedules: {sync: 1s, evaluate: 1s, deliver: 1s, digest: ["09:00", "14:00"]}',
    )
    + f"slack:\n  admins: [{ADMIN}]\n"
)
KEEP_CLOCK = TEAMS.replace(
    "    warn_before: 15m\n", "    warn_before: 15m\n    reassign_restarts_first_touch: false\n"
)

#: Tuesday 24 Nov 2026, 10:00 UTC; Maria was assigned to Lena at 08:30, her first touch was due
#: at 09:30 (an always-open UTC calendar).
TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@dataclass
class Team:
    web: Web
    lead_id: str

    @property
    def world(self) -> World:
        return self.web.world

    def choose(self, user_id: str, message: PostedMessage, owner_id: str) -> str:
        """``user_id`` chooses the owner ``owner_id`` in the lead's Reassign menu of
        ``message``; the choice's response_url."""
        answer = self.world.slack.click(
            self.web.url, user_id, message, "reassign", f"{self.lead_id}|{owner_id}"
        )
        assert (answer.status, answer.body) == (200, "")  # acknowledged at once, empty
        return answer.response_url

    def reply(self, response_url: str) -> str:
        response = self.world.slack.await_response(response_url)
        assert response["response_type"] == "ephemeral"  # to the chooser alone
        text: str = response["text"]
        return text

    def reminder(self) -> PostedMessage:
        """Lena's reminder about Maria."""
        return self.world.slack.dms_to("U0LENA")[0]

    def lead(self) -> Lead:
        with self.web.ctx.sessions() as session:
            lead = session.get(Lead, self.lead_id)
            assert lead is not None
            return lead

    def first_touch(self) -> tuple[str, datetime | None]:
        with self.web.ctx.sessions() as session:
            finding = session.get(Finding, (self.lead_id, "first_touch"))
            assert finding is not None
            return finding.state, finding.deadline_at

    def owner_in_crm(self) -> tuple[str | None, str | None]:
        contact = self.world.hubspot.contact(self.lead_id)
        return contact["hubspot_owner_id"], contact["hubspot_owner_assigneddate"]


def _team(world: World) -> Iterator[Team]:
    world.add_rep("101", "Lena Fischer", "U0LENA")
    world.add_rep("102", "Ana Silva", "U0ANA")
    world.add_rep("103", "Jonas Weber", "U0JONAS")
    world.slack.add_user("U0EVE", "eve@example.com", "Eve Outsider")
    world.slack.add_user("U0ADA", ADMIN, "Ada Admin")
    lead_id = world.add_lead(owner_id="101", assigned_ago=timedelta(minutes=90))
    with serving_web(world) as web:
        run_once(web.ctx)  # 10:00: Lena hears of the breach
        yield Team(web, lead_id)


@pytest.fixture
def team(tmp_path: Path, database_url: str) -> Iterator[Team]:
    for world in make_world(tmp_path, database_url, clock=Clock(TUESDAY_10), config=TEAMS):
        yield from _team(world)


@pytest.fixture
def keeping(tmp_path: Path, database_url: str) -> Iterator[Team]:
    for world in make_world(tmp_path, database_url, clock=Clock(TUESDAY_10), config=KEEP_CLOCK):
        yield from _team(world)


def _menus(blocks: list[dict[str, Any]] | None) -> list[list[tuple[str, str]]]:
    """Each Reassign menu of a message: its options as (label, value)."""
    return [
        [(o["text"]["text"], o["value"]) for o in e["options"]]
        for b in blocks or []
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "reassign"
    ]


def test_a_reminder_offers_the_rep_s_teammates_only(team: Team) -> None:
    message = team.reminder()
    # Ana is in Lena's team; Jonas is not, and Lena is not offered her own lead.
    assert _menus(message.blocks) == [[("Ana Silva", f"{team.lead_id}|102")]]
    (actions,) = [b for b in message.blocks or [] if b["type"] == "actions"]
    menu = actions["elements"][-1]
    assert (menu["type"], menu["placeholder"]["text"]) == ("static_select", "Reassign to…")
    # next to Logged a touch and Snooze, in the same actions block
    assert [e["action_id"] for e in actions["elements"]] == [
        "touched",
        "snooze_1h",
        "snooze_tomorrow",
        "reassign",
    ]


def test_the_rep_hands_the_lead_to_a_teammate(team: Team) -> None:
    world = team.world
    world.clock.now = TUESDAY_10 + timedelta(minutes=30)
    run_stage(team.web.ctx, "evaluate")  # 10:30: Lena's repeat is written, not yet sent
    (pending,) = [
        r
        for r in outbox_rows(team.web.ctx)
        if r.status == "pending" and r.recipient == "email:lena@example.com"
    ]
    world.clock.now = TUESDAY_10 + timedelta(minutes=35)
    response_url = team.choose("U0LENA", team.reminder(), "102")
    update = world.slack.await_update(team.reminder().ts)
    # The CRM has the new owner, assigned now (HubSpot moves the date itself).
    assert team.owner_in_crm() == ("102", iso(world.clock.now))
    # The store follows; the first-touch clock restarts at the new assignment.
    assert team.lead().owner_id == "102"
    assert team.first_touch() == ("pending", world.clock.now + timedelta(hours=1))
    # Lena's pending repeat is superseded, never sent.
    rows = {r.id: r for r in outbox_rows(team.web.ctx)}
    assert rows[pending.id].status == "superseded"
    assert rows[pending.id].last_error == "reassigned to Ana Silva by Lena Fischer"
    # The reminder shows what happened instead of its controls (in Lena's time zone).
    assert _menus(update.blocks) == [] and "actions" not in str(update.blocks)
    assert (
        ":arrows_counterclockwise: Reassigned to Ana Silva by Lena Fischer, Tue 24 Nov 11:35 CET."
        in str(update.blocks)
    )
    assert world.slack.responses_to(response_url) == []  # the updated DM says it all
    # Ana is told who handed her the lead and when its first touch is due; Lena chose, so
    # she gets no DM about it.
    run_stage(team.web.ctx, "deliver")
    (to_ana,) = world.slack.dms_to("U0ANA")
    assert "Maria Lopez" in str(to_ana.blocks)
    assert "is yours now: Lena Fischer handed it to you, Tue 24 Nov 11:35 CET." in to_ana.text
    assert "First touch due Tue 24 Nov 12:35 CET" in to_ana.text
    assert len(world.slack.dms_to("U0LENA")) == 1
    # Audited and explained.
    (action,) = team.web.actions()
    assert action.action == f"reassign {team.lead_id}|102"
    assert action.outcome.startswith(
        "reassigned from Lena Fischer (101) to Ana Silva (102); 1 pending reminders to "
        "lena@example.com superseded"
    )
    explained = explain_text(team.web.ctx, team.lead_id, world.clock.now)
    assert "assigned to Ana Silva (102); first-touch clock starts" in explained
    assert f"reassign {team.lead_id}|102 → reassigned from Lena Fischer" in explained


def test_the_first_touch_clock_keeps_running_when_the_policy_says_so(keeping: Team) -> None:
    world = keeping.world
    world.clock.now = TUESDAY_10 + timedelta(minutes=5)
    keeping.choose("U0LENA", keeping.reminder(), "102")
    world.slack.await_update(keeping.reminder().ts)
    assert keeping.owner_in_crm() == ("102", iso(world.clock.now))
    assert keeping.lead().owner_id == "102"
    # Still breached, from the first assignment: Ana is reminded of it at once.
    assert keeping.first_touch() == ("breached", DEADLINE)
    run_stage(keeping.web.ctx, "deliver")
    to_ana = world.slack.dms_to("U0ANA")
    assert any("First touch was due Tue 24 Nov 10:30 CET: overdue" in m.text for m in to_ana)
    assert any(m.text.startswith("First touch overdue: Maria Lopez") for m in to_ana)


def test_the_manager_reassigns_from_the_digest_and_both_reps_are_told(team: Team) -> None:
    world = team.world
    world.clock.now = TUESDAY_10.replace(hour=14, minute=1)
    run_once(team.web.ctx)  # 14:01: Mike's digest
    (digest,) = world.slack.dms_to("U0MIKE")
    assert _menus(digest.blocks) == [[("Ana Silva", f"{team.lead_id}|102")]]
    team.choose("U0MIKE", digest, "102")
    update = world.slack.await_update(digest.ts)
    assert team.owner_in_crm()[0] == "102"
    # Mike reads in New York: 09:01 EST.
    assert (
        ":arrows_counterclockwise: Reassigned to Ana Silva by Mike Manager, Tue 24 Nov 09:01 EST."
        in str(update.blocks)
    )
    assert _menus(update.blocks) == []
    run_stage(team.web.ctx, "deliver")
    (to_ana,) = world.slack.dms_to("U0ANA")
    assert "Mike Manager reassigned it to you from Lena Fischer" in to_ana.text
    told = world.slack.dms_to("U0LENA")[-1]
    assert "Mike Manager reassigned Maria Lopez to Ana Silva" in told.text
    assert "No more reminders about it to you." in str(told.blocks)


def test_someone_without_rights_is_refused_and_the_crm_is_not_written(team: Team) -> None:
    before = team.world.hubspot.contact(team.lead_id)
    text = team.reply(team.choose("U0EVE", team.reminder(), "102"))
    assert text.startswith(f"You may not reassign lead {team.lead_id}: only its owner Lena")
    assert team.world.hubspot.contact(team.lead_id) == before
    assert team.lead().owner_id == "101"
    assert team.world.slack.updates == []
    assert [a.outcome for a in team.web.actions()] == ["refused"]


def test_an_owner_outside_the_team_is_refused_except_for_an_admin(team: Team) -> None:
    # A forged (or stale) option: Jonas is in the US team.
    message = team.reminder()
    payload = team.world.slack.block_actions_payload(
        "U0LENA", message, "reassign", f"{team.lead_id}|102"
    )
    payload["actions"][0]["selected_option"]["value"] = f"{team.lead_id}|103"
    answer = team.world.slack.post_interaction(team.web.url, payload)
    text = team.reply(answer.response_url)
    assert text.startswith("Jonas Weber is not in team sales, the team of *Maria Lopez*")
    assert team.owner_in_crm()[0] == "101"
    assert [a.outcome for a in team.web.actions()] == ["refused: 103 is in team us"]
    # An SLA admin may choose anyone.
    payload = team.world.slack.block_actions_payload(
        "U0ADA", message, "reassign", f"{team.lead_id}|102"
    )
    payload["actions"][0]["selected_option"]["value"] = f"{team.lead_id}|103"
    team.world.slack.post_interaction(team.web.url, payload)
    team.world.slack.await_update(message.ts)
    assert team.owner_in_crm()[0] == "103"
    assert team.lead().owner_id == "103"


def test_a_lead_the_chosen_owner_has_already_is_not_written(team: Team) -> None:
    team.world.hubspot.upsert_contact(team.lead_id, hubspot_owner_id="102")
    run_stage(team.web.ctx, "sync")
    modified = team.world.hubspot.contact(team.lead_id)["lastmodifieddate"]
    text = team.reply(team.choose("U0LENA", team.reminder(), "102"))
    assert text.startswith("You may not reassign")  # Lena no longer owns it
    text = team.reply(team.choose("U0ANA", team.reminder(), "102"))
    assert text == "*Maria Lopez* is Ana Silva's lead already: nothing changed."
    assert team.world.hubspot.contact(team.lead_id)["lastmodifieddate"] == modified


#: HubSpot's answer once the day's requests are spent (API-FACTS): retried in an hour, not now.
DAILY_LIMIT = {
    "status": "error",
    "message": "You have reached your daily limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "c0ffee",
    "policyName": "DAILY",
}


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (403, None, "HTTP 403"),  # the token lacks the write scope: no retry
        (400, None, "HTTP 400"),  # HubSpot refuses the value
        (429, DAILY_LIMIT, "429"),  # the day's requests are spent
    ],
)
def test_a_crm_that_refuses_the_write_changes_nothing(
    team: Team, status: int, body: dict[str, str] | None, said: str
) -> None:
    team.world.hubspot.fail_next(1, status, body, path_contains=f"/contacts/{team.lead_id}")
    rows_before = [(r.id, r.status) for r in outbox_rows(team.web.ctx)]
    text = team.reply(team.choose("U0LENA", team.reminder(), "102"))
    assert text.startswith("Could not reassign *Maria Lopez*: the CRM refused the write (")
    assert said in text and text.endswith("Nothing changed; try again in a minute.")
    assert team.owner_in_crm()[0] == "101"
    assert team.lead().owner_id == "101"
    assert team.first_touch() == ("breached", DEADLINE)
    assert [(r.id, r.status) for r in outbox_rows(team.web.ctx)] == rows_before
    assert team.world.slack.updates == []
    (action,) = team.web.actions()
    assert action.outcome.startswith("failed: CRM write refused:") and said in action.outcome


def test_a_crm_that_stays_down_changes_nothing(team: Team) -> None:
    # 5xx are retried (0.5 s, 1 s, 2 s of backoff); still failing, the chooser is told.
    team.world.hubspot.fail_next(4, 503, path_contains=f"/contacts/{team.lead_id}")
    text = team.reply(team.choose("U0LENA", team.reminder(), "102"))
    assert "HTTP 503" in text and "Nothing changed" in text
    assert team.owner_in_crm()[0] == "101"
    assert team.lead().owner_id == "101"


def test_the_select_payload_s_choice_is_read() -> None:
    from worker.pipeline.slack_actions import BlockAction

    action = BlockAction.from_payload(
        {
            "user": {"id": "U1"},
            "actions": [
                {
                    "type": "static_select",
                    "action_id": "reassign",
                    "selected_option": {"text": {"text": "Ana"}, "value": "7|102"},
                }
            ],
        }
    )
    assert (action.action_id, action.value) == ("reassign", "7|102")


def test_the_store_keeps_the_first_assignment(team: Team) -> None:
    with team.web.ctx.sessions() as session:
        (first,) = session.scalars(select(Lead.first_assigned_at)).all()
    assert first == TUESDAY_10 - timedelta(minutes=90)
    team.choose("U0LENA", team.reminder(), "102")
    team.world.slack.await_update(team.reminder().ts)
    lead = team.lead()
    assert (lead.owner_assigned_at, lead.first_assigned_at) == (
        TUESDAY_10,
        TUESDAY_10 - timedelta(minutes=90),
    )
