"""Reload without restart (issue 15), as Alertmanager does: each stage reads the config file as
it is at its start, beat follows a changed schedule, an invalid edit is refused while the last
good config keeps running, and ``sla-worker health`` says "config invalid since …" (exit 1)
until the file is fixed. No import reads the YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.world import World
from tests.test_cli import ROOT, run
from worker.beat import ReloadingScheduler
from worker.celery_app import make_app
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once
from worker.settings import Settings


def _edit(world: World, old: str, new: str) -> None:
    path = world.config_path
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    # A later mtime even on a file system with coarse timestamps.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_a_running_worker_judges_under_the_edited_file_at_its_next_stage(
    world: World, ctx: Context
) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(minutes=20))
    run_once(ctx)  # first touch due in 40 minutes: nothing to say yet
    assert world.slack.messages == []
    _edit(world, "first_touch: 1h", "first_touch: 20m")
    world.clock.advance(timedelta(minutes=1))
    result = run_once(ctx)  # the same context, as a long-running worker process has
    evaluated = result["evaluate"]
    assert isinstance(evaluated, dict) and evaluated["rejudged"] == 1
    (dm,) = world.slack.dms_to("U0LENA")
    assert "First touch overdue" in dm.text


def test_an_invalid_edit_is_refused_the_last_good_config_runs_and_health_says_so(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    world.clock.now = datetime.now(UTC)  # health judges the stages' last runs by the wall clock
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(minutes=20))
    run_once(ctx)
    _edit(world, "first_touch: 1h", "first_touch: 1x")
    world.clock.advance(timedelta(hours=1))
    result = run_once(ctx)
    assert result["failed"] == {}
    (dm,) = world.slack.dms_to("U0LENA")  # judged under the last good config: 1h, breached
    assert "First touch overdue" in dm.text
    done = run("health", cwd=tmp_path, env=world.env())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "config: invalid since" in done.stdout
    assert 'policies[0].first_touch: "1x" is not a duration' in done.stdout
    _edit(world, "first_touch: 1x", "first_touch: 1h")
    run_once(ctx)
    done = run("health", cwd=tmp_path, env=world.env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "config: ok" in done.stdout


def test_health_says_the_config_is_invalid_before_any_worker_saw_it(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    _edit(world, "first_touch: 1h", "first_touch: 1x")
    done = run("health", cwd=tmp_path, env=world.env())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "config: invalid since" in done.stdout


def test_beat_follows_a_changed_schedule_and_refuses_an_invalid_one(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    app = make_app(Settings.from_env())
    beat = ReloadingScheduler(app=app, schedule_filename=str(tmp_path / "beat-schedule"))
    try:
        assert beat.schedule["sync"].schedule.run_every == timedelta(seconds=1)
        assert not beat.follow_config()  # unchanged
        _edit(world, "schedules: {sync: 1s,", "schedules: {sync: 2m,")
        assert beat.follow_config()
        assert beat.schedule["sync"].schedule.run_every == timedelta(minutes=2)
        _edit(world, "schedules: {sync: 2m,", "schedules: {sync: 2x,")
        assert not beat.follow_config()  # refused: the running schedule stays
        assert beat.schedule["sync"].schedule.run_every == timedelta(minutes=2)
    finally:
        beat.close()


def test_no_import_reads_the_config(tmp_path: Path) -> None:
    code = "import worker.celery_app, worker.tasks, worker.beat, worker.cli; print('imported')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLA_CONFIG": str(tmp_path / "missing.yaml")},
    )
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout
