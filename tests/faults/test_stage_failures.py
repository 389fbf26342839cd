"""A stage that fails does not silence the others, and says so (issue 14: "also seen")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.e2e.world import World
from tests.test_cli import run
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once


def test_a_crm_outage_does_not_silence_reminders_already_due(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(minutes=30))
    run_once(ctx)  # stored; nothing due yet
    assert world.slack.messages == []
    world.clock.advance(timedelta(hours=1))  # the first-touch deadline passes…
    world.hubspot.fail_next(50, 503, {"status": "error", "message": "down"})  # …with the CRM down
    result = run_once(ctx)
    failed = result["failed"]
    assert isinstance(failed, dict) and set(failed) == {"sync"}
    assert len(world.slack.dms_to("U0LENA")) == 1  # judged and told from what was stored


def test_run_once_exits_1_when_slack_rejects_the_token(world: World, tmp_path: Path) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    world.slack.revoke_token()
    done = run("run-once", cwd=tmp_path, env=world.env())
    assert done.returncode == 1
    assert "error: deliver failed: Slack rejected the bot token" in done.stderr
    assert "Traceback" not in done.stderr
