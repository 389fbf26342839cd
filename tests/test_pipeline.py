"""The pipeline end to end through the real clients, against the loopback fakes, on SQLite
and PostgreSQL: what Slack received is what the tests assert on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from tests.e2e.world import World, outbox_rows
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once
from worker.store.models import Finding, Lead


def test_an_overdue_lead_reaches_its_rep_as_one_dm(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=1, minutes=30))
    result = run_once(ctx)
    dms = world.slack.dms_to("U0LENA")
    assert len(dms) == 1
    assert "First touch overdue" in dms[0].text and "Maria Lopez" in dms[0].text
    assert result["deliver"] == {  # type: ignore[comparison-overlap]
        "messages": 1,
        "rows_sent": 1,
        "rows_retrying": 0,
        "rows_failed": 0,
        "rows_rerouted": 0,
        "rows_held": 0,
        "rows_superseded": 0,
        "auth_failed": False,
    }
    assert [r.status for r in outbox_rows(ctx)] == ["sent"]


def test_running_again_sends_nothing_new(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    run_once(ctx)
    world.clock.advance(timedelta(minutes=5))
    run_once(ctx)
    run_once(ctx)
    assert len(world.slack.messages) == 1


def test_a_lead_touched_in_time_causes_no_message(world: World, ctx: Context) -> None:
    world.add_rep()
    lead = world.add_lead(assigned_ago=timedelta(hours=3))
    world.add_call(lead, at=world.clock.now - timedelta(hours=2, minutes=30))
    run_once(ctx)
    assert world.slack.messages == []
    with ctx.sessions() as session:
        finding = session.get(Finding, (lead, "first_touch"))
        assert finding is not None and finding.state == "met"


def test_a_warning_comes_before_the_breach(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(minutes=50))
    run_once(ctx)
    assert "due soon" in world.slack.dms_to("U0LENA")[0].text
    world.clock.advance(timedelta(minutes=15))
    run_once(ctx)
    texts = [m.text for m in world.slack.dms_to("U0LENA")]
    assert len(texts) == 2 and "overdue" in texts[1]


def test_another_owners_touch_does_not_count(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_rep("102", "Jonas Weber", "U0JONAS")
    lead = world.add_lead(assigned_ago=timedelta(hours=2))
    world.add_call(lead, owner_id="102", at=world.clock.now - timedelta(hours=1, minutes=50))
    run_once(ctx)
    assert len(world.slack.dms_to("U0LENA")) == 1


def test_the_manager_gets_the_escalation_after_two_hours(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=1, minutes=30))
    run_once(ctx)
    assert world.slack.dms_to("U0MIKE") == []
    world.clock.advance(timedelta(hours=2))
    run_once(ctx)
    escalations = world.slack.dms_to("U0MIKE")
    assert len(escalations) == 1
    assert "Escalation" in escalations[0].text or "Escalation" in str(escalations[0].blocks)
    assert len(world.slack.dms_to("U0LENA")) == 1  # the rep is not told twice


def test_a_failed_send_stays_pending_and_is_retried(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.slack.fail_next("chat.postMessage", "internal_error", status=500)
    result = run_once(ctx)
    assert result["deliver"]["rows_retrying"] == 1  # type: ignore[index]
    assert world.slack.messages == []
    assert [r.status for r in outbox_rows(ctx)] == ["pending"]
    world.clock.advance(timedelta(minutes=2))
    run_once(ctx)
    assert len(world.slack.dms_to("U0LENA")) == 1
    assert [r.status for r in outbox_rows(ctx)] == ["sent"]


def test_ratelimited_waits_for_retry_after(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.slack.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=30)
    run_once(ctx)
    (row,) = outbox_rows(ctx)
    assert row.status == "pending" and row.due_at == world.clock.now + timedelta(seconds=30)
    world.clock.advance(timedelta(seconds=10))
    run_once(ctx)
    assert world.slack.messages == []
    world.clock.advance(timedelta(seconds=25))
    run_once(ctx)
    assert len(world.slack.messages) == 1


def test_a_revoked_token_pauses_delivery_and_loses_nothing(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.slack.fail_next("chat.postMessage", "token_revoked")
    result = run_once(ctx)
    assert result["deliver"]["auth_failed"] is True  # type: ignore[index]
    assert [r.status for r in outbox_rows(ctx)] == ["pending"]
    run_once(ctx)  # the token works again
    assert len(world.slack.messages) == 1


def test_a_rep_unknown_to_slack_falls_back_to_the_manager(world: World, ctx: Context) -> None:
    world.add_rep(slack_id=None)
    world.add_lead(assigned_ago=timedelta(hours=2))
    result = run_once(ctx)
    assert result["deliver"]["rows_rerouted"] == 1  # type: ignore[index]
    original, fallback = outbox_rows(ctx)
    assert original.status == "rerouted"
    assert original.last_error is not None and "users_not_found" in original.last_error
    assert fallback.recipient == "email:mike.manager@example.com"
    run_once(ctx)  # the fallback is delivered on the next pass
    (dm,) = world.slack.dms_to("U0MIKE")
    assert "Could not deliver to lena@example.com (users_not_found)" in str(dm.blocks)
    assert "Maria Lopez" in dm.text


def test_dry_run_sends_nothing_and_shows_the_message(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    result = run_once(ctx, dry_run=True)
    assert world.slack.messages == []
    (preview,) = result["would_send"]  # type: ignore[misc]
    assert preview.recipient == "email:lena@example.com"
    assert "Maria Lopez" in preview.message.text


def test_a_malformed_contact_is_skipped_and_the_rest_synced(world: World, ctx: Context) -> None:
    world.add_rep()
    world.hubspot.upsert_contact(firstname="Broken", createdate="not a date")
    good = world.add_lead(assigned_ago=timedelta(hours=2))
    result = run_once(ctx)
    assert result["sync"]["skipped"] >= 1  # type: ignore[index]
    with ctx.sessions() as session:
        assert [lead.id for lead in session.scalars(select(Lead))] == [good]
    assert len(world.slack.messages) == 1


def test_an_unassigned_lead_is_not_judged(world: World, ctx: Context) -> None:
    world.add_lead(owner_id=None, assigned_ago=timedelta(hours=5))
    result = run_once(ctx)
    assert result["evaluate"]["skipped"] == 1  # type: ignore[index]
    assert world.slack.messages == []


def test_only_changed_or_due_leads_are_evaluated(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(minutes=10))
    assert run_once(ctx)["evaluate"]["leads"] == 1  # type: ignore[index]
    world.clock.advance(timedelta(minutes=1))
    assert run_once(ctx)["evaluate"]["leads"] == 0  # type: ignore[index]
    world.clock.advance(timedelta(minutes=40))  # past the warning instant
    assert run_once(ctx)["evaluate"]["leads"] == 1  # type: ignore[index]


def test_a_rejected_crm_token_turns_health_red_and_loses_nothing(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    from tests.test_cli import run

    world.clock.now = datetime.now(UTC)  # health judges the stages' last runs by the wall clock
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.hubspot.fail_next(
        1,
        401,
        {
            "status": "error",
            "message": "Authentication credentials not found.",
            "category": "INVALID_AUTHENTICATION",
        },
    )
    assert "sync" in run_once(ctx)["failed"]  # type: ignore[operator]
    done = run("health", cwd=tmp_path, env=world.env())
    assert done.returncode == 1 and "crm: FAILING" in done.stdout
    run_once(ctx)  # the token works again: nothing was skipped
    assert len(world.slack.dms_to("U0LENA")) == 1
    done = run("health", cwd=tmp_path, env=world.env())
    assert done.returncode == 0 and "crm: ok" in done.stdout
