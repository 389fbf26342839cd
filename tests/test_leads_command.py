"""``sla-worker leads`` (issue 19): find a lead's id for ``explain`` — through the CLI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.e2e.world import World
from tests.test_cli import run
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once


def test_leads_lists_the_most_urgent_first_and_filters_by_rep_and_breach(
    world: World, ctx: Context, tmp_path: Path
) -> None:
    world.add_rep()
    world.add_rep("102", "Jonas Weber", "U0JONAS")
    late = world.add_lead(assigned_ago=timedelta(hours=2), name="Maria Lopez")
    fresh = world.add_lead(assigned_ago=timedelta(minutes=5), name="Tobias Klein")
    other = world.add_lead(owner_id="102", assigned_ago=timedelta(minutes=1), name="Ana Ruiz")
    run_once(ctx)

    done = run("leads", cwd=tmp_path, env=world.env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "state", "deadline"]
    assert [line.split()[0] for line in lines[1:]] == [late, fresh, other]
    assert "breached first" in lines[1] and "Lena Fischer" in lines[1] and "Maria Lopez" in lines[1]

    done = run("leads", "--breached", cwd=tmp_path, env=world.env())
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == [late]
    done = run("leads", "--rep", "JONAS@example.com", cwd=tmp_path, env=world.env())
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == [other]
    done = run("leads", "--rep", "nobody@example.com", cwd=tmp_path, env=world.env())
    assert done.stdout.strip() == "no leads match"
