"""The evaluate task on PostgreSQL: a pass that finds more than a batch due asks helpers to
join it (Celery tasks on the evaluate queue); they take the batches it does not hold, so the
work is shared and each lead judged once. Run here with Celery's eager mode: the helpers run
at once, in their own transactions, while the first pass holds its first batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.e2e.world import World, make_world
from worker import tasks
from worker.celery_app import app
from worker.pipeline.stages import run_stage
from worker.store.models import Finding, OutboxRow

pytestmark = pytest.mark.postgres


@pytest.fixture
def eager() -> Iterator[None]:
    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def world(tmp_path: Path, postgres_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, postgres_url)


def test_a_large_pass_is_shared_with_helpers_and_judges_each_lead_once(
    world: World, eager: None
) -> None:
    world.add_rep()
    for i in range(520):  # more than one batch (500)
        world.add_lead(assigned_ago=timedelta(hours=2), name=f"Lead N{i}")
    with world.context() as ctx, tasks.bound_to(ctx):
        run_stage(ctx, "sync")
        first = tasks.evaluate()
        with ctx.sessions() as session:
            judged = session.scalar(select(func.count(func.distinct(Finding.lead_id))))
            reminders = session.scalars(
                select(OutboxRow.lead_id).where(
                    OutboxRow.level == 0, OutboxRow.rule == "first_touch"
                )
            ).all()
    assert first["leads"] == 500  # its own batch; a helper judged the other 20
    assert judged == 520
    assert len(reminders) == len(set(reminders)) == 520
