"""``sla-worker health`` tells the truth (issue 19): one test per red reason, through the CLI as
an admin (or a container healthcheck) runs it, against the fakes and a real store."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.world import Clock, World, make_world
from tests.test_cli import run
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once
from worker.store.db import session_scope
from worker.store.models import OutboxRow


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    # Health judges the stages' last runs by the wall clock: the world runs on it too.
    yield from make_world(tmp_path, database_url, clock=Clock(datetime.now(UTC)))


def _health(world: World, tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    done = run("health", *args, cwd=tmp_path, env={**world.env(), **env})
    assert "Traceback" not in done.stdout + done.stderr
    return done.returncode, done.stdout


def _working(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    run_once(ctx)


def test_everything_working_is_green_part_by_part(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    _working(world, ctx)
    code, out = _health(world, tmp_path)
    assert code == 0, out
    for line in (
        "database: ok",
        "config: ok",
        "stage sync: ok",
        "stage evaluate: ok",
        "stage deliver: ok",
        "outbox: ok: 1 sent",
        "crm (live): ok",
        "slack (live): ok",
    ):
        assert line in out, out
    code, out = _health(world, tmp_path, "--json")
    checks = {c["component"]: c for c in json.loads(out)}
    assert code == 0 and all(c["ok"] for c in checks.values())
    assert checks["stage sync"]["since"] is not None


def test_a_refused_slack_token_is_red(world: World, ctx: Context, tmp_path: Path) -> None:
    _working(world, ctx)
    world.slack.revoke_token()
    code, out = _health(world, tmp_path)
    assert code == 1
    assert "slack (live): FAILING: " in out and "token_revoked" in out


def test_the_crm_daily_quota_past_its_warning_share_is_red(
    world: World, ctx: Context, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _working(world, ctx)
    code, out = _health(world, tmp_path, "--offline")
    assert code == 0, out
    assert "crm quota: ok since" in out and "0% of today's 1,000,000 requests spent" in out
    world.hubspot.spend_daily_requests(800_000)  # other apps of the portal, today
    with caplog.at_level(logging.WARNING, logger="worker.crm.quota"):
        run_once(ctx)
    assert "CRM daily request quota: 80% of today's 1,000,000 requests spent" in caplog.text
    code, out = _health(world, tmp_path, "--offline")
    assert code == 1
    assert "crm quota: FAILING since" in out and "past the warning share of 80%" in out


def test_a_missing_crm_token_is_red_with_its_variable(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    _working(world, ctx)
    code, out = _health(world, tmp_path, HUBSPOT_TOKEN="")
    assert code == 1
    assert "crm (live): FAILING: HUBSPOT_TOKEN is not set" in out


def test_a_stage_that_has_not_succeeded_for_too_long_is_red(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    world.clock.now -= timedelta(hours=1)  # the worker last ran an hour ago, then hung
    _working(world, ctx)
    code, out = _health(world, tmp_path, "--offline")
    assert code == 1
    assert "stage sync: FAILING since" in out and "last succeeded 60m ago (runs every 1s)" in out


def test_a_store_no_stage_ever_ran_on_is_red(world: World, ctx: Context, tmp_path: Path) -> None:
    code, out = _health(world, tmp_path, "--offline")
    assert code == 1
    assert "stage deliver: FAILING: has not succeeded yet" in out


def test_failed_and_stuck_notices_are_red(world: World, ctx: Context, tmp_path: Path) -> None:
    _working(world, ctx)
    now = world.clock.now
    with session_scope(ctx.sessions) as session:
        for n, (status, due) in enumerate(
            [("failed", now - timedelta(hours=3)), ("pending", now - timedelta(hours=1))]
        ):
            session.add(
                OutboxRow(
                    dedup_key=f"test-{n}", kind="breach", lead_id="1", rule="first_touch",
                    recipient="channel:#gone", payload={}, created_at=due, due_at=due,
                    status=status,
                )
            )  # fmt: skip
    code, out = _health(world, tmp_path, "--offline")
    assert code == 1
    assert "outbox: FAILING: 1 notices failed in the last day" in out
    assert "1 notices waiting past their time since" in out


def test_an_unmigrated_store_is_one_line_and_red(
    world: World, tmp_path: Path, postgres_url: str
) -> None:
    code, out = _health(world, tmp_path, "--offline", DATABASE_URL=postgres_url)
    assert code == 1
    assert "database: FAILING: not migrated to this version: run `sla-worker db upgrade`" in out


def test_health_never_creates_the_default_sqlite_store(world: World, tmp_path: Path) -> None:
    workdir = tmp_path / "empty"
    workdir.mkdir()
    env = {**world.env(), "DATABASE_URL": ""}
    done = run("health", "--offline", cwd=workdir, env=env)
    assert done.returncode == 1
    assert "database: FAILING: no store at sla-worker.sqlite" in done.stdout
    assert list(workdir.iterdir()) == []


def test_the_beat_check_follows_the_schedule_state(world: World, tmp_path: Path) -> None:
    state = tmp_path / "celerybeat-schedule"
    env = {"SLA_BEAT_SCHEDULE": str(state)}
    code, out = _health(world, tmp_path, "--beat", **env)
    assert code == 1 and "beat: FAILING: no schedule state" in out
    state.write_bytes(b"")
    code, out = _health(world, tmp_path, "--beat", **env)
    assert code == 0, out
    old = time.time() - 600
    os.utime(state, (old, old))
    code, out = _health(world, tmp_path, "--beat", **env)
    assert code == 1 and "schedule state not written since" in out
