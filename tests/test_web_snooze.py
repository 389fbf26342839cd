"""The *Snooze* buttons of a rep's reminder, end to end (issue 17, part 3): the fake Slack clicks
the button in the DM the rep received, signed as Slack signs it; ``sla-worker web`` queues the
click (Celery, eager here), and the worker holds the rep's own reminders of that breach back
until the time chosen (in working hours, at most ``slack.max_snooze``), when one returns; the
manager is told on the ladder's schedule all the same; the DM is updated in place, and the
click is audited and shown by ``explain``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.web import Web, serving_web
from tests.e2e.world import CONFIG, Clock, World, make_world, outbox_rows
from worker.explain import explain_text
from worker.fakes.slack import PostedMessage
from worker.pipeline.stages import run_once, run_stage
from worker.store.models import Snooze

#: Office hours in Berlin: 09:00-17:00 Monday to Friday. The rep is reminded every 30 minutes
#: of business time; the manager is told (a DM) an hour of business time after the deadline.
OFFICE = (
    CONFIG.replace(
        'always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}',
        'berlin: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}',
    )
    .replace("calendar: always", "calendar: berlin")
    .replace(
        "  - {after: 0m, notify: rep}\n  - {after: 2h, notify: manager}\n",
        "  - {after: 0m, notify: rep, repeat_every: 30m}\n"
        "  - {after: 1h, notify: manager, send_outside_hours: true}\n",
    )
)
MAX_3D = OFFICE + "slack:\n  max_snooze: 3d\n"
MAX_2H = OFFICE + "slack:\n  max_snooze: 2h\n"

#: Tuesday 24 Nov 2026, 10:30 in Berlin; the lead was assigned at 09:00, so its first touch
#: was due at 10:00 (09:00 UTC).
TUESDAY_1030 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
#: Friday 27 Nov 2026, 16:30 in Berlin; the lead was assigned at 15:00, first touch due 16:00.
FRIDAY_1630 = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
MONDAY_0900 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@dataclass
class Reminder:
    """Lena's reminder about Maria, as Slack holds it."""

    web: Web
    message: PostedMessage
    lead_id: str
    deadline_at: datetime

    @property
    def world(self) -> World:
        return self.web.world

    @property
    def reference(self) -> str:
        return f"{self.lead_id}|first_touch|{self.deadline_at.isoformat()}"

    def click(self, user_id: str, button: str) -> str:
        """``user_id`` clicks a Snooze button of the reminder; the click's response_url."""
        answer = self.world.slack.click(self.web.url, user_id, self.message, button, self.reference)
        assert (answer.status, answer.body) == (200, "")  # acknowledged at once, empty
        return answer.response_url

    def reply(self, response_url: str) -> str:
        response = self.world.slack.await_response(response_url)
        assert response["response_type"] == "ephemeral"  # to the clicker alone
        text: str = response["text"]
        return text

    def snoozes(self) -> list[Snooze]:
        with self.web.ctx.sessions() as session:
            return list(session.scalars(select(Snooze)))

    def dms_at(self, at: datetime, user_id: str = "U0LENA") -> int:
        """Run the pipeline at ``at``; how many DMs ``user_id`` has had in all."""
        self.world.clock.now = at
        run_once(self.web.ctx)
        return len(self.world.slack.dms_to(user_id))


def _reminder(world: World, now: datetime) -> Iterator[Reminder]:
    world.add_rep("101", "Lena Fischer", "U0LENA")
    world.slack.add_user("U0EVE", "eve@example.com", "Eve Outsider")
    lead_id = world.add_lead(owner_id="101", assigned_ago=timedelta(hours=1, minutes=30))
    with serving_web(world) as web:
        run_once(web.ctx)  # the rep hears of the breach
        (message,) = world.slack.dms_to("U0LENA")
        yield Reminder(web, message, lead_id, now - timedelta(minutes=30))


@pytest.fixture
def friday(tmp_path: Path, database_url: str) -> Iterator[Reminder]:
    for world in make_world(tmp_path, database_url, clock=Clock(FRIDAY_1630), config=MAX_3D):
        yield from _reminder(world, FRIDAY_1630)


@pytest.fixture
def tuesday(tmp_path: Path, database_url: str) -> Iterator[Reminder]:
    for world in make_world(tmp_path, database_url, clock=Clock(TUESDAY_1030), config=MAX_3D):
        yield from _reminder(world, TUESDAY_1030)


@pytest.fixture
def capped(tmp_path: Path, database_url: str) -> Iterator[Reminder]:
    for world in make_world(tmp_path, database_url, clock=Clock(TUESDAY_1030), config=MAX_2H):
        yield from _reminder(world, TUESDAY_1030)


def _actions(blocks: list[dict[str, object]] | None) -> list[tuple[str, str]]:
    return [
        (str(e["action_id"]), str(e["value"]))
        for b in blocks or []
        if b["type"] == "actions"
        for e in b["elements"]  # type: ignore[attr-defined]
    ]


def test_a_reminder_carries_snooze_buttons(tuesday: Reminder) -> None:
    assert _actions(tuesday.message.blocks) == [
        ("touched", tuesday.reference),
        ("snooze_1h", tuesday.reference),
        ("snooze_tomorrow", tuesday.reference),
    ]


def test_an_hour_at_friday_1630_returns_the_reminder_at_monday_s_opening(
    friday: Reminder,
) -> None:
    friday.world.clock.now = FRIDAY_1630 + timedelta(minutes=1)
    friday.click("U0LENA", "snooze_1h")
    update = friday.world.slack.await_update(friday.message.ts)
    assert ":zzz: Snoozed until Mon 30 Nov 09:00 CET by Lena Fischer." in str(update.blocks)
    (snooze,) = friday.snoozes()
    assert (snooze.until, snooze.by_email) == (MONDAY_0900, "lena@example.com")
    # Not before Monday's opening, all weekend.
    for at in (
        FRIDAY_1630 + timedelta(minutes=29),
        FRIDAY_1630 + timedelta(hours=1),
        MONDAY_0900 - timedelta(days=1),
        MONDAY_0900 - timedelta(minutes=1),
    ):
        assert friday.dms_at(at) == 1, at
    # At Monday's opening the reminder returns: one DM.
    assert friday.dms_at(MONDAY_0900) == 2
    returned = friday.world.slack.dms_to("U0LENA")[-1]
    assert "First touch overdue" in returned.text and "Maria Lopez" in returned.text
    assert ("snooze_1h", friday.reference) in _actions(returned.blocks)  # snooze it again
    # The snooze is over: the next repeat (30 minutes of business time later) goes out.
    assert friday.dms_at(MONDAY_0900 + timedelta(minutes=30)) == 3


def test_an_hour_holds_the_repeats_back_for_an_hour_and_not_the_manager(
    tuesday: Reminder,
) -> None:
    tuesday.world.clock.now = TUESDAY_1030 + timedelta(minutes=1)
    response_url = tuesday.click("U0LENA", "snooze_1h")
    tuesday.world.slack.await_update(tuesday.message.ts)
    until = TUESDAY_1030 + timedelta(hours=1, minutes=1)  # 11:31
    assert [s.until for s in tuesday.snoozes()] == [until]
    # 11:00: the rep's repeat is held back; the manager is told on the ladder's time.
    assert tuesday.dms_at(TUESDAY_1030 + timedelta(minutes=30)) == 1
    (to_mike,) = tuesday.world.slack.dms_to("U0MIKE")
    assert "Escalation: first touch overdue" in to_mike.text
    # 11:30: still held back (its repeat fell due inside the snooze).
    assert tuesday.dms_at(TUESDAY_1030 + timedelta(hours=1)) == 1
    # 11:31: the reminder returns; 12:00 the next repeat.
    assert tuesday.dms_at(until) == 2
    assert tuesday.dms_at(TUESDAY_1030 + timedelta(hours=1, minutes=30)) == 3
    # Nothing was said to Lena privately: the updated DM says it all.
    assert tuesday.world.slack.responses_to(response_url) == []


def test_the_dm_is_updated_in_place(tuesday: Reminder) -> None:
    tuesday.click("U0LENA", "snooze_tomorrow")
    update = tuesday.world.slack.await_update(tuesday.message.ts)
    assert (update.channel, update.text) == (tuesday.message.channel, tuesday.message.text)
    assert _actions(update.blocks) == []  # the buttons are gone
    note = update.blocks[-2] if update.blocks else None  # above the line saying what to do
    assert note == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": ":zzz: Snoozed until Wed 25 Nov 09:00 CET by Lena Fischer. Reminders "
                "to the rep only: the manager is still told on the escalation schedule.",
            }
        ],
    }
    assert update.blocks is not None and update.blocks[0] == {
        k: v for k, v in (tuesday.message.blocks or [])[0].items() if k != "block_id"
    }


def test_a_snooze_past_max_snooze_is_cut_and_says_so(capped: Reminder) -> None:
    text = capped.reply(capped.click("U0LENA", "snooze_tomorrow"))
    until = TUESDAY_1030 + timedelta(hours=2)
    assert text == (
        "A snooze lasts at most 2h (`slack.max_snooze`): the reminders return "
        "Tue 24 Nov 12:30 CET, not Wed 25 Nov 09:00 CET. The manager is still told on the "
        "escalation schedule."
    )
    assert [s.until for s in capped.snoozes()] == [until]
    assert "Snoozed until Tue 24 Nov 12:30 CET" in str(
        capped.world.slack.await_update(capped.message.ts).blocks
    )
    assert capped.dms_at(until - timedelta(minutes=1)) == 1
    assert capped.dms_at(until) == 2  # back at the cap, not tomorrow


def test_a_later_click_replaces_the_snooze(tuesday: Reminder) -> None:
    slack, ref = tuesday.world.slack, tuesday.reference
    # Two clicks on the DM as it was (a view not yet refreshed): the later one wins.
    first = slack.block_actions_payload("U0LENA", tuesday.message, "snooze_tomorrow", ref)
    second = slack.block_actions_payload("U0LENA", tuesday.message, "snooze_1h", ref)
    assert slack.post_interaction(tuesday.web.url, first).status == 200
    slack.await_update(tuesday.message.ts)
    tuesday.world.clock.advance(timedelta(minutes=5))
    assert slack.post_interaction(tuesday.web.url, second).status == 200
    slack.await_update(tuesday.message.ts, nth=2)
    (snooze,) = tuesday.snoozes()
    assert snooze.until == TUESDAY_1030 + timedelta(hours=1, minutes=5)
    # The reminder the first snooze was to bring back on Wednesday is cancelled.
    returning = [
        (r.due_at, r.status, r.last_error)
        for r in outbox_rows(tuesday.web.ctx)
        if "|snooze-" in r.dedup_key
    ]
    assert returning == [
        (datetime(2026, 11, 25, 8, 0, tzinfo=UTC), "superseded", "snoozed again by Lena Fischer"),
        (snooze.until, "pending", None),
    ]


def test_a_stranger_is_refused_alone_and_nothing_changes(tuesday: Reminder) -> None:
    text = tuesday.reply(tuesday.click("U0EVE", "snooze_1h"))
    assert text.startswith(f"You may not act on lead {tuesday.lead_id}: only its owner")
    assert tuesday.snoozes() == []
    assert tuesday.world.slack.updates == []
    assert [(a.slack_user_id, a.outcome) for a in tuesday.web.actions()] == [("U0EVE", "refused")]
    assert len(outbox_rows(tuesday.web.ctx)) == 1  # the reminder sent, nothing more
    assert tuesday.dms_at(TUESDAY_1030 + timedelta(minutes=30)) == 2  # the repeat goes out


def test_the_manager_may_snooze_for_the_rep(tuesday: Reminder) -> None:
    tuesday.click("U0MIKE", "snooze_1h")
    tuesday.world.slack.await_update(tuesday.message.ts)
    assert [s.by_email for s in tuesday.snoozes()] == ["mike.manager@example.com"]


def test_the_click_is_audited_and_explain_lists_the_snooze(tuesday: Reminder) -> None:
    tuesday.click("U0LENA", "snooze_1h")
    tuesday.world.slack.await_update(tuesday.message.ts)
    (action,) = tuesday.web.actions()
    assert action.action == f"snooze_1h {tuesday.reference}"
    assert action.outcome == (
        "snoozed until 2026-11-24T10:30:00+00:00: 0 pending reminders moved; "
        "a reminder returns then"
    )
    text = explain_text(tuesday.web.ctx, tuesday.lead_id, tuesday.world.clock.now)
    assert "Snoozed from Slack (reminders to the rep only):\n" in text
    assert (
        "Tue 24 Nov 10:30 CET  first touch reminders (deadline Tue 24 Nov 10:00 CET) snoozed "
        "by Lena Fischer (lena@example.com) until Tue 24 Nov 11:30 CET"
    ) in text


def test_a_reminder_written_and_not_yet_sent_waits_for_the_snooze_to_end(
    tuesday: Reminder,
) -> None:
    ctx, world = tuesday.web.ctx, tuesday.world
    world.clock.now = TUESDAY_1030 + timedelta(minutes=30)  # 11:00
    run_stage(ctx, "sync")
    run_stage(ctx, "evaluate")  # the 11:00 repeat is written, not yet sent
    pending = [r for r in outbox_rows(ctx) if r.status == "pending"]
    (repeat,) = [r for r in pending if r.level == 0]
    (to_manager,) = [r for r in pending if r.level == 1]
    tuesday.click("U0LENA", "snooze_1h")
    world.slack.await_update(tuesday.message.ts)
    until = world.clock.now + timedelta(hours=1)
    (action,) = tuesday.web.actions()
    assert action.outcome.startswith("snoozed until 2026-11-24T11:00:00+00:00: 1 pending")
    (moved,) = [r for r in outbox_rows(ctx) if r.id == repeat.id]
    assert (moved.status, moved.due_at) == ("pending", until)
    (kept,) = [r for r in outbox_rows(ctx) if r.id == to_manager.id]
    assert kept.due_at == to_manager.due_at  # the manager's time is not the rep's to move
    run_stage(ctx, "deliver")
    assert len(world.slack.dms_to("U0LENA")) == 1
    # At 12:00 the repeat and the returning reminder go out together, as one DM.
    assert tuesday.dms_at(until) == 2
