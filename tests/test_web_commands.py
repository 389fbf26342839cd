"""``/sla`` end to end: the fake Slack posts signed slash commands to ``sla-worker web`` (bolt on
waitress), the command is queued as a Celery task (eager here) that answers at the fake's
``response_url``, for the caller's eyes only, and every command leaves one audit row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.web import Web, serving_web
from tests.e2e.world import CONFIG, World, make_world
from worker import tasks
from worker.pipeline.stages import run_stage
from worker.store.models import Lead

ADMIN = "ada.admin@example.com"
RECORD = "https://app.hubspot.com/contacts/1/record/0-1/{id}"


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    config = CONFIG + f"slack:\n  admins: [{ADMIN.upper()}]\n"  # case is no matter
    yield from make_world(tmp_path, database_url, config=config)


@pytest.fixture
def web(world: World) -> Iterator[Web]:
    """Lena (owner 101) has a breached lead and a fresh one, Jonas (102) one of his own; Mike
    manages the team; Ada is an admin; Eve is in Slack and nobody in the SLA."""
    world.add_rep("101", "Lena Fischer", "U0LENA")
    world.add_rep("102", "Jonas Weber", "U0JONAS")
    world.slack.add_user("U0ADA", ADMIN, "Ada Admin")
    world.slack.add_user("U0EVE", "eve@example.com", "Eve Outsider")
    world.add_lead(owner_id="101", assigned_ago=timedelta(hours=2), name="Maria Lopez")
    world.add_lead(
        owner_id="101", assigned_ago=timedelta(minutes=5), name="Dana White", company="<!here> AG"
    )
    world.add_lead(owner_id="102", assigned_ago=timedelta(minutes=30), name="Tobias Klein")
    with serving_web(world) as web:
        run_stage(web.ctx, "sync")
        run_stage(web.ctx, "evaluate")
        yield web


def lead_id(web: Web, email: str) -> str:
    with web.ctx.sessions() as session:
        return session.scalars(select(Lead.id).where(Lead.email == email)).one()


def test_the_owner_gets_the_timeline_by_lead_id(web: Web) -> None:
    maria = lead_id(web, "maria@lead.example")
    text = web.command("U0LENA", f"explain {maria}")
    assert text.startswith(f"*Lead {maria}*")
    assert f"```\nLead {maria} Maria Lopez · team sales" in text
    assert "first touch" in text and text.endswith("```")
    [action] = web.actions()
    assert (action.slack_user_id, action.email, action.action, action.lead_id, action.outcome) == (
        "U0LENA", "lena@example.com", f"/sla explain {maria}", maria, "answered"
    )  # fmt: skip


def test_the_owner_gets_the_timeline_by_the_lead_s_email_as_typed_or_as_slack_escapes_it(
    web: Web,
) -> None:
    maria = lead_id(web, "maria@lead.example")
    for typed in ("MARIA@lead.example", "<mailto:maria@lead.example|maria@lead.example>"):
        assert f"Lead {maria} Maria Lopez" in web.command("U0LENA", f"explain {typed}")


def test_the_owner_gets_the_timeline_by_the_crm_link(web: Web) -> None:
    maria = lead_id(web, "maria@lead.example")
    link = RECORD.replace("{id}", maria)
    for typed in (link, f"<{link}>", f"<{link}/?tab=activity|Maria>"):
        assert f"Lead {maria} Maria Lopez" in web.command("U0LENA", f"explain {typed}")
    text = web.command("U0LENA", "explain https://example.com/leads/1")
    assert "is not a link to a CRM record like" in text and "Lead " not in text


def test_the_owner_s_manager_and_an_admin_may_see_the_lead(web: Web) -> None:
    maria = lead_id(web, "maria@lead.example")
    for manager_or_admin in ("U0MIKE", "U0ADA"):
        assert f"Lead {maria} Maria Lopez" in web.command(manager_or_admin, f"explain {maria}")


def test_someone_without_rights_gets_a_refusal_that_says_who_may(web: Web) -> None:
    maria = lead_id(web, "maria@lead.example")
    for outsider in ("U0JONAS", "U0EVE"):  # another rep; a Slack member with no part in it
        text = web.command(outsider, f"explain {maria}")
        assert text.startswith(f"You may not see lead {maria}: only its owner Lena Fischer")
        assert "mike.manager@example.com" in text and "SLA admin" in text
        assert "Maria Lopez" not in text and "```" not in text  # nothing of the lead
    outcomes = [(a.slack_user_id, a.lead_id, a.outcome) for a in web.actions()]
    assert outcomes == [("U0JONAS", maria, "refused"), ("U0EVE", maria, "refused")]


def test_a_user_slack_knows_no_e_mail_for_is_allowed_nothing(web: Web) -> None:
    maria = lead_id(web, "maria@lead.example")
    text = web.command("U0NOBODY", f"explain {maria}")
    assert "did not tell the SLA worker your e-mail" in text and "Maria" not in text
    [action] = web.actions()
    assert action.email is None and action.outcome.startswith("refused")


def test_mine_lists_only_the_caller_s_leads_most_urgent_first(web: Web) -> None:
    lena = web.command("U0LENA", "mine")
    assert lena.startswith("*Your open leads (2), most urgent first:*")
    assert lena.index("Maria Lopez") < lena.index("Dana White")  # breached before pending
    assert "Tobias Klein" not in lena
    assert "breached first touch · was due Tue 24 Nov 10:00 CET" in lena  # Lena's Berlin time
    assert f"<{RECORD.replace('{id}', lead_id(web, 'maria@lead.example'))}|" in lena
    assert "&lt;!here&gt; AG" in lena and "<!here>" not in lena  # CRM text pings nobody
    jonas = web.command("U0JONAS", "mine")
    assert "Tobias Klein" in jonas and "Maria Lopez" not in jonas
    assert "You own no open leads" in web.command("U0EVE", "mine")
    assert [a.outcome for a in web.actions()] == [
        "answered: 2 leads", "answered: 1 leads", "answered: 0 leads"
    ]  # fmt: skip


def test_help_and_unknown_subcommands_answer_the_usage(web: Web) -> None:
    for text in ("", "help"):
        assert "`/sla explain <lead id, e-mail or CRM link>`" in web.command("U0EVE", text)
    text = web.command("U0EVE", "<!channel>")
    assert text.startswith('"&lt;!channel&gt;" is not something /sla does.')
    assert "`/sla mine`" in text
    assert "Lead " not in web.command("U0LENA", "explain")  # no lead given: the usage


def test_an_unknown_lead_is_named_and_nothing_else(web: Web) -> None:
    text = web.command("U0LENA", "explain 999999")
    assert text == "Lead 999999 is not in the store (has sync run? is the id right?)."
    text = web.command("U0LENA", "explain nobody@lead.example")
    assert text == "No tracked lead has the e-mail nobody@lead.example."
    assert [a.outcome for a in web.actions()] == ["not found", "not found"]


def test_who_asks_is_known_from_deliver_s_lookups_else_asked_of_slack_once(web: Web) -> None:
    def users_info_calls() -> int:
        return sum(1 for r in web.world.slack.requests if r.path == "/api/users.info")

    run_stage(web.ctx, "deliver")  # Lena's overdue lead: deliver looked her up by e-mail
    assert web.world.slack.dms_to("U0LENA")
    web.command("U0LENA", "mine")
    assert users_info_calls() == 0  # the same Slack user table
    web.command("U0JONAS", "mine")
    web.command("U0JONAS", "mine")
    assert users_info_calls() == 1
    web.world.clock.advance(timedelta(days=2))  # past notifications.user_cache_for (1d)
    web.command("U0JONAS", "mine")
    assert users_info_calls() == 2


def test_a_command_the_queue_cannot_take_is_answered_with_a_apology(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.slack_command, "apply_async", broker_down)
    text = web.command("U0LENA", "mine")
    assert text == "The SLA worker could not take your command just now; try again in a minute."
    assert web.actions() == []  # never reached a worker


def test_the_command_task_runs_on_the_deliver_queue_within_a_short_time_limit() -> None:
    from worker.celery_app import make_app
    from worker.settings import Settings

    root = Path(__file__).resolve().parent.parent
    app = make_app(Settings.from_env({"SLA_CONFIG": str(root / "config/sla.yaml")}))
    app.loader.import_default_modules()
    assert app.amqp.router.route({}, "worker.tasks.slack_command")["queue"].name == "deliver"
    task = app.tasks["worker.tasks.slack_command"]
    assert 0 < task.soft_time_limit < task.time_limit <= 120  # a person is waiting
