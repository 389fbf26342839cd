"""Reps who are away (issue 17): ``/sla away`` / ``/sla back`` posted signed through the fake
Slack to ``sla-worker web``, a Slack status marker, the config's list; their reminders reach
the team's cover (else the manager), and the manager is warned before their leads breach."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.web import Web, serving_web
from tests.e2e.world import CONFIG, World, make_world, outbox_rows
from tests.test_config import errors_of, minimal
from worker.fakes.slack import PostedMessage
from worker.pipeline.stages import run_stage
from worker.slack.messages import SlackMessage, as_plain_text
from worker.store.models import AwayPeriod, OutboxRow

COVER = "carl.cover@example.com"
WITH_COVER = CONFIG.replace(
    "    manager: mike.manager@example.com\n",
    f"    manager: mike.manager@example.com\n    cover: {COVER}\n",
)


def _web(world: World) -> Iterator[Web]:
    """Lena (owner 101) and Jonas (102) in the team, Mike its manager, Carl in Slack; Lena's
    lead Maria Lopez breached (assigned 2 h ago, first touch 1 h) and judged, nothing sent."""
    world.add_rep("101", "Lena Fischer", "U0LENA")
    world.add_rep("102", "Jonas Weber", "U0JONAS")
    world.slack.add_user("U0CARL", COVER, "Carl Cover")
    world.add_lead(owner_id="101", assigned_ago=timedelta(hours=2), name="Maria Lopez")
    with serving_web(world) as web:
        run_stage(web.ctx, "sync")
        run_stage(web.ctx, "evaluate")
        yield web


@pytest.fixture
def web(tmp_path: Path, database_url: str) -> Iterator[Web]:
    for world in make_world(tmp_path, database_url, config=WITH_COVER):
        yield from _web(world)


def _texts(messages: list[PostedMessage]) -> list[str]:
    return [m.text + "\n" + as_plain_text(SlackMessage(m.text, m.blocks or [])) for m in messages]


def _pass(web: Web, advance: timedelta = timedelta(0)) -> None:
    web.world.clock.advance(advance)
    for stage in ("sync", "evaluate", "deliver"):
        run_stage(web.ctx, stage)


def test_sla_away_is_stored_and_the_reminders_reach_the_cover_until_sla_back(web: Web) -> None:
    slack = web.world.slack
    text = web.command("U0LENA", "away 2026-12-24")
    assert text.startswith(":palm_tree: You are away until Thu 24 Dec.")
    assert COVER in text and "`/sla back`" in text
    with web.ctx.sessions() as session:
        [period] = session.scalars(select(AwayPeriod)).all()
    assert (period.email, period.source, period.ended_at) == ("lena@example.com", "command", None)
    # the team calendar is UTC: the 24th begins at midnight there
    assert period.until == datetime(2026, 12, 24, tzinfo=UTC)
    [action] = web.actions()
    assert (action.action, action.outcome) == (
        "/sla away 2026-12-24", "away until 2026-12-24T00:00:00+00:00"
    )  # fmt: skip

    run_stage(web.ctx, "deliver")
    assert slack.dms_to("U0LENA") == []
    [covered] = _texts(slack.dms_to("U0CARL"))
    assert "Lena Fischer is away until Thu 24 Dec — you are covering:" in covered
    assert "Maria Lopez" in covered

    assert web.command("U0LENA", "back").startswith("Welcome back")
    assert [a.outcome for a in web.actions()][-1] == "back: 1 ended"
    maria = next(r.lead_id for r in outbox_rows(web.ctx))
    assert (
        "Tue 24 Nov 10:00 UTC  owner lena@example.com away until Tue 24 Nov 10:00 UTC "
        "(/sla away by lena@example.com)"
    ) in web.command("U0LENA", f"explain {maria}")
    # a lead of Lena's that breaches after she is back: hers again; Maria's reminder, which
    # Carl had, is not sent to her a second time
    web.world.add_lead(owner_id="101", assigned_ago=timedelta(minutes=50), name="Dana White")
    _pass(web, timedelta(minutes=11))
    [back] = _texts(slack.dms_to("U0LENA"))
    assert "Dana White" in back and "Maria Lopez" not in back
    assert len(slack.dms_to("U0CARL")) == 1
    with web.ctx.sessions() as session:
        rows = session.scalars(select(OutboxRow).where(OutboxRow.lead_id != "")).all()
    maria = [r for r in rows if "Maria" in str(r.payload.get("lead_name"))]
    assert sorted((r.recipient, r.status) for r in maria) == [
        (f"email:{COVER}", "sent"), ("email:lena@example.com", "rerouted")
    ]  # fmt: skip


def test_without_a_cover_a_slack_status_marker_sends_the_reminders_to_the_manager_until_it_expires(
    tmp_path: Path, database_url: str
) -> None:
    for world in make_world(tmp_path, database_url):
        for web in _web(world):
            ends = web.world.clock.now + timedelta(days=2)
            world.slack.set_status("U0LENA", ":palm_tree:", "Back Thursday", int(ends.timestamp()))
            run_stage(web.ctx, "deliver")
            assert world.slack.dms_to("U0LENA") == []
            [covered] = _texts(world.slack.dms_to("U0MIKE"))
            assert "Lena Fischer is away until Thu 26 Nov 10:00 UTC — you are covering:" in covered
            assert "Maria Lopez" in covered
            assert "you are away until thu 26 nov 11:00 cet" in (  # her Berlin time
                web.command("U0LENA", "mine").lower()
            )
            # past the status's expiry: Lena's new breach is hers
            world.add_lead(owner_id="101", assigned_ago=timedelta(minutes=1), name="Dana White")
            _pass(web, timedelta(days=3))
            assert any("Dana White" in t for t in _texts(world.slack.dms_to("U0LENA")))
            covering = [t for t in _texts(world.slack.dms_to("U0MIKE")) if "covering" in t]
            assert len(covering) == 1  # the rest are his own escalations (level 1, after 2 h)
            assert "you are away" not in web.command("U0LENA", "mine").lower()


def test_a_status_without_a_marker_changes_nothing(web: Web) -> None:
    web.world.slack.set_status("U0LENA", ":coffee:", "In a meeting")
    run_stage(web.ctx, "deliver")
    assert web.world.slack.dms_to("U0LENA") and not web.world.slack.dms_to("U0CARL")


def test_the_config_s_away_list_sends_the_reminders_to_the_cover(
    tmp_path: Path, database_url: str
) -> None:
    config = WITH_COVER + (
        "away:\n  reps:\n    - {email: Lena@example.com, from: 2026-11-20, until: 2026-12-01}\n"
    )
    for world in make_world(tmp_path, database_url, config=config):
        for web in _web(world):
            run_stage(web.ctx, "deliver")
            assert world.slack.dms_to("U0LENA") == []
            [covered] = _texts(world.slack.dms_to("U0CARL"))
            assert "Lena Fischer is away until Tue 01 Dec — you are covering:" in covered
            maria = web.ctx.sessions().scalars(select(OutboxRow.lead_id)).first()
            assert maria is not None
            assert "away until Tue 01 Dec (away.reps[0])" in web.command(
                "U0LENA", f"explain {maria}"
            )


def test_the_manager_is_warned_once_per_lead_before_an_away_rep_s_leads_breach(web: Web) -> None:
    slack, clock = web.world.slack, web.world.clock
    web.command("U0LENA", "away 3d")
    # Dana is due in 20 min (warning from 15 min before); Tom in 40 min
    dana = web.world.add_lead(owner_id="101", assigned_ago=timedelta(minutes=40), name="Dana White")
    web.world.add_lead(owner_id="101", assigned_ago=timedelta(minutes=20), name="Tom Brand")
    deadline = clock.now + timedelta(minutes=20)
    _pass(web, timedelta(minutes=2))  # 18 min before: no warning yet
    assert not [t for t in _texts(slack.dms_to("U0MIKE")) if "Dana" in t]
    _pass(web, timedelta(minutes=5))  # 13 min before Dana's deadline: she is in warning
    assert clock.now < deadline
    [warning] = [m for m in slack.dms_to("U0MIKE") if "is away" in m.text]
    text = _texts([warning])[0]
    assert "Lena Fischer is away until Fri 27 Nov 10:00 UTC" in text
    assert "Dana White" in text and "Tom Brand" not in text
    # the deadline in Mike's own time zone (New York), and a Reassign menu of her teammates
    assert "Tue 24 Nov 05:20 EST" in text
    blocks = warning.blocks or []
    [line] = [i for i, b in enumerate(blocks) if "Dana White" in str(b.get("text"))]
    [menu] = blocks[line + 1]["elements"]
    assert (menu["type"], menu["action_id"]) == ("static_select", "reassign")
    assert [o["value"] for o in menu["options"]] == [f"{dana}|102"]
    # the rep's own warning went to the cover, not to her
    assert any("Dana White" in t for t in _texts(slack.dms_to("U0CARL")))
    assert not any("Dana White" in t for t in _texts(slack.dms_to("U0LENA")))

    _pass(web, timedelta(minutes=2))  # Dana again: no second warning
    assert len([m for m in slack.dms_to("U0MIKE") if "is away" in m.text]) == 1
    _pass(web, timedelta(minutes=17))  # Tom comes due later: one more, naming only him
    warnings = [m for m in slack.dms_to("U0MIKE") if "is away" in m.text]
    assert len(warnings) == 2
    assert "Tom Brand" in warnings[1].text and "Dana White" not in warnings[1].text


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("", "Say until when"),
        ("someday", '"someday" is not a date (2026-12-24)'),
        ("2026-13-01", '"2026-13-01" is not a date like 2026-12-24.'),
        ("2026-11-01", '"2026-11-01" is not in the future.'),
        ("2030-01-01", '"2030-01-01" is more than a year away.'),
        ("<!channel>", '"&lt;!channel&gt;" is not a date'),
    ],
)
def test_bad_sla_away_input_gets_a_clear_error_and_changes_nothing(
    web: Web, typed: str, problem: str
) -> None:
    text = web.command("U0LENA", f"away {typed}")
    assert text.startswith(problem)
    assert "`/sla away <until>` takes" in text
    with web.ctx.sessions() as session:
        assert session.scalars(select(AwayPeriod)).all() == []
    assert [a.outcome for a in web.actions()] == ["usage: bad until"]


def test_sla_away_with_a_weekday_tomorrow_and_a_duration(web: Web) -> None:
    # now: Tue 24 Nov 2026 10:00 UTC
    assert "until Thu 26 Nov." in web.command("U0LENA", "away thursday")
    assert "until Wed 25 Nov." in web.command("U0LENA", "away tomorrow")
    assert "until Tue 01 Dec." in web.command("U0LENA", "away tue")  # next week's
    assert "until Tue 24 Nov 14:00 UTC." in web.command("U0LENA", "away 4h")
    with web.ctx.sessions() as session:
        running = [p for p in session.scalars(select(AwayPeriod)) if p.ended_at is None]
    assert len(running) == 1  # each replaced the one before


def test_a_cover_must_be_an_e_mail_address() -> None:
    data = minimal()
    team = next(iter(data["teams"]))
    data["teams"][team]["cover"] = "carl"
    assert f"teams.{team}.cover" in errors_of(data)
    data = minimal(away={"reps": [{"email": "a@example.com", "from": "2026-12-24"}]})
    assert "away.reps[0].until" in errors_of(data)


def test_the_manager_reassigns_a_lead_from_the_warning(web: Web) -> None:
    slack, world = web.world.slack, web.world
    web.command("U0LENA", "away 3d")
    dana = world.add_lead(owner_id="101", assigned_ago=timedelta(minutes=46), name="Dana White")
    _pass(web)
    [warning] = [m for m in slack.dms_to("U0MIKE") if "is away" in m.text]
    answer = slack.click(web.url, "U0MIKE", warning, "reassign", f"{dana}|102")
    assert answer.status == 200
    update = slack.await_update(warning.ts)  # the click's task is done
    assert world.hubspot.contact(dana)["hubspot_owner_id"] == "102"
    assert "Reassigned to Jonas Weber by Mike Manager" in str(update.blocks)
    outcomes = [a.outcome for a in web.actions()]
    assert outcomes[0].startswith("away until") and outcomes[1].startswith("reassigned from")
