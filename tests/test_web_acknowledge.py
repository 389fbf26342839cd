"""The *Acknowledge* button of a manager's digest line, end to end (issue 17, part 2): the fake
Slack clicks the button of the digest it received, signed as Slack signs it; ``sla-worker web``
queues the click (Celery, eager here), and the worker acknowledges the breach: no repeat and
no next level of it goes out any more, the rep is told who acknowledged, the digest is updated
in place, and the click is audited and shown by ``explain``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e.web import Web, serving_web
from tests.e2e.world import CONFIG, Clock, World, make_world, outbox_rows
from worker.explain import explain_text
from worker.fakes.slack import PostedMessage
from worker.pipeline.stages import run_once, run_stage
from worker.store.models import Acknowledgement, Lead

TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
#: Both leads were assigned at 08:00: first touch due at 09:00 (an always-open UTC calendar).
DEADLINE = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
ADMIN = "ada.admin@example.com"

#: The rep is reminded every 4 h; the manager gets the breach in the 09:00/14:00 digest 30 min
#: after it and again every 4 h; the channel 10 h after it (19:00).
LADDER = (
    CONFIG.replace(
        "schedules: {sync: 1s, evaluate: 1s, deliver: 1s}",
        'schedules: {sync: 1s, evaluate: 1s, deliver: 1s, digest: ["09:00", "14:00"]}',
    ).replace(
        "  - {after: 0m, notify: rep}\n  - {after: 2h, notify: manager}\n",
        "  - {after: 0m, notify: rep, repeat_every: 4h}\n"
        "  - {after: 30m, notify: manager, digest: true, repeat_every: 4h}\n"
        "  - {after: 10h, notify: channel}\n",
    )
    + f"slack:\n  admins: [{ADMIN}]\n"
)


@dataclass
class Digest:
    """Mike's 14:00 digest about Maria (Lena's lead) and Tobias (Jonas's), as Slack holds it."""

    web: Web
    message: PostedMessage
    maria: str
    tobias: str

    @property
    def world(self) -> World:
        return self.web.world

    def reference(self, lead_id: str) -> str:
        return f"{lead_id}|first_touch|{DEADLINE.isoformat()}"

    def click(self, user_id: str, lead_id: str, **options: object) -> str:
        """``user_id`` clicks Acknowledge on the lead's line; the click's response_url."""
        answer = self.world.slack.click(
            self.web.url, user_id, self.message, "acknowledge", self.reference(lead_id), **options
        )
        assert (answer.status, answer.body) == (200, "")  # acknowledged at once, empty
        return answer.response_url

    def acknowledgements(self) -> list[Acknowledgement]:
        with self.web.ctx.sessions() as session:
            return list(session.scalars(select(Acknowledgement)))

    def reply(self, response_url: str) -> str:
        response = self.world.slack.await_response(response_url)
        assert response["response_type"] == "ephemeral"  # to the clicker alone
        assert response["replace_original"] is False  # the digest stays as it is
        text: str = response["text"]
        return text


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, clock=Clock(TUESDAY_10), config=LADDER)


@pytest.fixture
def digest(world: World) -> Iterator[Digest]:
    world.add_rep("101", "Lena Fischer", "U0LENA")
    world.add_rep("102", "Jonas Weber", "U0JONAS")
    world.slack.add_user("U0EVE", "eve@example.com", "Eve Outsider")
    world.add_lead(owner_id="101", assigned_ago=timedelta(hours=2), name="Maria Lopez")
    world.add_lead(owner_id="102", assigned_ago=timedelta(hours=2), name="Tobias Klein")
    with serving_web(world) as web:
        run_once(web.ctx)  # 10:00: each rep hears of the breach
        world.clock.now = TUESDAY_10.replace(hour=14, minute=1)
        run_once(web.ctx)  # 14:01: the 14:00 digest, and each rep's 13:00 reminder
        (message,) = world.slack.dms_to("U0MIKE")
        with web.ctx.sessions() as session:
            ids = {name: id_ for name, id_ in session.execute(select(Lead.first_name, Lead.id))}
        yield Digest(web, message, ids["Maria"], ids["Tobias"])


def _buttons(blocks: list[Any] | None) -> list[str]:
    """The values of a message's buttons, in order."""
    return [str(b["accessory"]["value"]) for b in blocks or [] if "accessory" in b]


def _line_of(blocks: list[Any] | None, name: str) -> Any:
    (line,) = [b for b in blocks or [] if b["type"] == "section" and name in str(b["text"])]
    return line


def test_the_digest_has_an_acknowledge_button_on_each_overdue_line(digest: Digest) -> None:
    blocks = digest.message.blocks
    assert _buttons(blocks) == [digest.reference(digest.maria), digest.reference(digest.tobias)]
    button = _line_of(blocks, "Maria Lopez")["accessory"]
    assert button == {
        "type": "button",
        "action_id": "acknowledge",
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "value": digest.reference(digest.maria),
    }


def test_a_manager_s_acknowledgement_stops_that_breach_and_only_that_one(digest: Digest) -> None:
    world, ctx = digest.world, digest.web.ctx
    world.clock.now = TUESDAY_10.replace(hour=17, minute=1)
    run_stage(ctx, "sync")
    run_stage(ctx, "evaluate")  # each rep's 17:00 reminder is written, not yet sent

    def pending_for(lead_id: str) -> list[str]:
        rows = outbox_rows(ctx)
        return [r.recipient for r in rows if r.lead_id == lead_id and r.status == "pending"]

    assert pending_for(digest.maria) == ["email:lena@example.com"]
    assert pending_for(digest.tobias) == ["email:jonas@example.com"]

    world.clock.advance(timedelta(minutes=1))  # 17:02
    digest.click("U0MIKE", digest.maria)
    update = world.slack.await_update(digest.message.ts)

    # The digest, updated in place: Maria's line says who acknowledged when (in Mike's New
    # York time), without its button; Tobias's line keeps its button; the text is the same.
    assert (update.channel, update.text) == (digest.message.channel, digest.message.text)
    maria_line = _line_of(update.blocks, "Maria Lopez")
    assert "accessory" not in maria_line
    assert maria_line["text"]["text"].endswith(
        ":ballot_box_with_check: Acknowledged by Mike Manager, Tue 24 Nov 12:02 EST"
    )
    assert _buttons(update.blocks) == [digest.reference(digest.tobias)]
    # In the store: the acknowledgement, the audit, Maria's reminder cancelled (not Tobias's).
    (ack,) = digest.acknowledgements()
    assert (ack.lead_id, ack.rule, ack.deadline_at) == (digest.maria, "first_touch", DEADLINE)
    assert (ack.by_email, ack.by_slack_user_id, ack.by_name, ack.at) == (
        "mike.manager@example.com", "U0MIKE", "Mike Manager", world.clock.now
    )  # fmt: skip
    (action,) = digest.web.actions()
    assert (action.slack_user_id, action.email, action.lead_id) == (
        "U0MIKE", "mike.manager@example.com", digest.maria
    )  # fmt: skip
    assert action.action == f"acknowledge {digest.reference(digest.maria)}"
    assert action.outcome == "acknowledged: 1 pending reminders cancelled; the rep is told"
    cancelled = [r for r in outbox_rows(ctx) if r.status == "superseded"]
    assert [(r.lead_id, r.kind, r.last_error) for r in cancelled] == [
        (digest.maria, "breach", "acknowledged by Mike Manager")
    ]
    assert pending_for(digest.tobias) == ["email:jonas@example.com"]

    # The rep hears who acknowledged, under the message that first named the lead to her.
    run_stage(ctx, "deliver")
    lena = world.slack.dms_to("U0LENA")
    assert len(lena) == 3  # 10:00 the breach, 14:01 its 13:00 reminder, now the news
    news = lena[-1]
    assert news.thread_ts == lena[0].ts
    assert "First touch overdue, acknowledged by Mike Manager" in news.text
    assert "Maria Lopez" in news.text and "acknowledged Tue 24 Nov 18:02 CET" in news.text
    assert "|Maria Lopez>" in str(news.blocks)  # the name links to the lead in the CRM
    assert len(world.slack.dms_to("U0JONAS")) == 3  # his 17:00 reminder went out

    # The next morning: every later reminder, the manager's repeat and the channel's level
    # (19:00) were due for both breaches; only Tobias's go out.
    world.clock.now = TUESDAY_10 + timedelta(days=1, hours=-1, minutes=5)  # Wed 09:05
    run_once(ctx)
    assert len(world.slack.dms_to("U0LENA")) == 3
    assert len(world.slack.dms_to("U0JONAS")) == 4
    (wednesday,) = world.slack.dms_to("U0MIKE")[1:]
    assert "Tobias Klein" in str(wednesday.blocks) and "Maria Lopez" not in str(wednesday.blocks)
    (channel_post,) = world.slack.messages_in("sales-escalations")
    seen = channel_post.text + str(channel_post.blocks)
    assert "Tobias Klein" in seen and "Maria Lopez" not in seen
    maria_rows = [r for r in outbox_rows(ctx) if r.lead_id == digest.maria]
    assert not [r for r in maria_rows if r.status == "pending"]
    # Nothing about Maria's breach was written after the click but the news to Lena.
    written_after = [r.kind for r in maria_rows if r.created_at >= ack.at]
    assert written_after == ["acknowledged"]


def test_a_reminder_written_just_before_the_click_is_not_sent(
    digest: Digest, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, ctx = digest.world, digest.web.ctx
    digest.click("U0MIKE", digest.maria)
    world.slack.await_update(digest.message.ts)
    # An evaluate pass that read the acknowledgements just before the click commits after
    # it: it writes Maria's 17:00 reminder all the same.
    world.clock.now = TUESDAY_10.replace(hour=17, minute=1)
    monkeypatch.setattr("worker.store.acknowledgements.for_leads", lambda session, ids: {})
    run_stage(ctx, "evaluate")
    monkeypatch.undo()
    maria_pending = (digest.maria, "breach", "pending")
    (late,) = [r for r in outbox_rows(ctx) if (r.lead_id, r.kind, r.status) == maria_pending]
    run_stage(ctx, "deliver")
    lena = world.slack.dms_to("U0LENA")
    assert "acknowledged by Mike Manager" in lena[-1].text  # the news, and no reminder
    assert len(lena) == 3
    (row,) = [r for r in outbox_rows(ctx) if r.id == late.id]
    assert (row.status, row.last_error) == ("superseded", "acknowledged before it could be sent")
    assert len(world.slack.dms_to("U0JONAS")) == 3  # Tobias's reminder goes out


def test_someone_without_rights_is_refused_alone_and_nothing_changes(digest: Digest) -> None:
    for other in ("U0JONAS", "U0EVE"):  # another rep; a Slack member with no part in it
        text = digest.reply(digest.click(other, digest.maria))
        assert text.startswith(
            f"You may not act on lead {digest.maria}: only its owner Lena Fischer"
        )
        assert "mike.manager@example.com" in text and "SLA admin" in text
    assert digest.acknowledgements() == []
    assert digest.world.slack.updates == []
    assert [(a.slack_user_id, a.outcome) for a in digest.web.actions()] == [
        ("U0JONAS", "refused"), ("U0EVE", "refused")
    ]  # fmt: skip
    assert {r.status for r in outbox_rows(digest.web.ctx)} == {"sent"}


def test_the_owner_and_an_admin_may_acknowledge_too(digest: Digest) -> None:
    digest.world.slack.add_user("U0ADA", ADMIN, "Ada Admin")
    digest.click("U0ADA", digest.tobias)
    digest.world.slack.await_update(digest.message.ts)
    digest.click("U0LENA", digest.maria)  # the rep herself: nobody needs telling
    update = digest.world.slack.await_update(digest.message.ts, nth=2)
    assert _buttons(update.blocks) == []
    acks = {a.lead_id: a.by_email for a in digest.acknowledgements()}
    assert acks == {digest.tobias: ADMIN, digest.maria: "lena@example.com"}
    told = [r.recipient for r in outbox_rows(digest.web.ctx) if r.kind == "acknowledged"]
    assert told == ["email:jonas@example.com"]


def test_a_badly_signed_click_gets_401_and_changes_nothing(digest: Digest) -> None:
    slack = digest.world.slack
    answer = slack.click(
        digest.web.url,
        "U0MIKE",
        digest.message,
        "acknowledge",
        digest.reference(digest.maria),
        bad_signature=True,
    )
    assert answer.status == 401
    # A signed click sent after it is answered: had the forged one got through, it would
    # have been carried out before.
    digest.reply(digest.click("U0EVE", digest.maria))
    assert digest.acknowledgements() == []
    assert slack.updates == []
    assert [a.slack_user_id for a in digest.web.actions()] == ["U0EVE"]
    assert {r.status for r in outbox_rows(digest.web.ctx)} == {"sent"}


def test_a_second_click_answers_already_acknowledged_and_changes_nothing(digest: Digest) -> None:
    slack = digest.world.slack
    reference = digest.reference(digest.maria)
    # Two clicks on the digest as it was (a double click, a view not yet refreshed).
    first = slack.block_actions_payload("U0MIKE", digest.message, "acknowledge", reference)
    second = slack.block_actions_payload("U0MIKE", digest.message, "acknowledge", reference)
    assert slack.post_interaction(digest.web.url, first).status == 200
    slack.await_update(digest.message.ts)
    digest.world.clock.advance(timedelta(minutes=3))
    assert slack.post_interaction(digest.web.url, second).status == 200
    text = digest.reply(second["response_url"])
    assert text == (
        "*Maria Lopez*: this breach was already acknowledged by Mike Manager at "
        "Tue 24 Nov 09:01 EST. Nothing changed."
    )
    assert len(digest.acknowledgements()) == 1
    assert [a.outcome for a in digest.web.actions()] == [
        "acknowledged: 0 pending reminders cancelled; the rep is told",
        "already acknowledged by mike.manager@example.com",
    ]
    told = [r for r in outbox_rows(digest.web.ctx) if r.kind == "acknowledged"]
    assert len(told) == 1


def test_a_breach_that_is_over_is_not_acknowledged(digest: Digest) -> None:
    world = digest.world
    world.add_call(digest.maria, owner_id="101")  # Lena finally calls
    world.clock.advance(timedelta(minutes=5))
    run_stage(digest.web.ctx, "sync")
    run_stage(digest.web.ctx, "evaluate")
    text = digest.reply(digest.click("U0MIKE", digest.maria))
    assert "this first touch breach is no longer open" in text
    assert digest.acknowledgements() == []
    assert [a.outcome for a in digest.web.actions()] == ["not current"]


def test_explain_shows_the_acknowledgement_and_the_click(digest: Digest) -> None:
    digest.click("U0MIKE", digest.maria)
    digest.world.slack.await_update(digest.message.ts)
    text = explain_text(digest.web.ctx, digest.maria, digest.world.clock.now)
    assert "Acknowledged from Slack:\n" in text
    assert (
        "Tue 24 Nov 14:01 UTC  first touch breach (deadline Tue 24 Nov 09:00 UTC) acknowledged "
        "by Mike Manager (mike.manager@example.com): no more reminders of it"
    ) in text
    assert (
        f"mike.manager@example.com (U0MIKE): acknowledge {digest.reference(digest.maria)} → "
        "acknowledged: 0 pending reminders cancelled; the rep is told"
    ) in text
    assert "Acknowledged from Slack" not in explain_text(
        digest.web.ctx, digest.tobias, digest.world.clock.now
    )
    # The same timeline is what /sla explain answers the rep.
    assert "acknowledged by Mike Manager" in digest.web.command("U0LENA", f"explain {digest.maria}")


def test_the_click_task_runs_on_the_deliver_queue_within_a_short_time_limit() -> None:
    from worker.celery_app import make_app
    from worker.settings import Settings

    root = Path(__file__).resolve().parent.parent
    app = make_app(Settings.from_env({"SLA_CONFIG": str(root / "config/sla.yaml")}))
    app.loader.import_default_modules()
    assert app.amqp.router.route({}, "worker.tasks.slack_action")["queue"].name == "deliver"
    task = app.tasks["worker.tasks.slack_action"]
    assert 0 < task.soft_time_limit < task.time_limit <= 120  # a person is waiting
