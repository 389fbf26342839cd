"""Judgement races: a lead stored before its owner (sync reads owners first; a rep added
meanwhile) waits for the owner instead of reaching the manager in the rep's place (found by the
broker-restart fault test, where it happened 2 times in 4); two evaluations at once never race
on the same findings (issue 15)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.e2e.world import World
from worker.pipeline.context import Context
from worker.pipeline.evaluate import EvaluateSummary, evaluate
from worker.pipeline.stages import run_once, run_stage
from worker.store import queries
from worker.store.leases import alone
from worker.store.models import OutboxRow


def test_a_lead_whose_owner_is_not_synced_yet_waits_for_the_owner(
    world: World, ctx: Context
) -> None:
    world.add_rep("101", "Lena Fischer", "U0LENA")
    world.add_lead(owner_id="102", assigned_ago=timedelta(hours=2), name="Tobias Klein")
    run_once(ctx)  # the lead is stored; its owner 102 is not in the CRM's owner list yet
    assert world.slack.messages == []  # the manager is not told in the rep's place
    world.add_rep("102", "Jonas Weber", "U0JONAS")
    world.clock.advance(timedelta(minutes=1))
    run_once(ctx)
    assert [m.user_id for m in world.slack.messages] == ["U0JONAS"]


def test_an_owner_that_never_appears_falls_back_to_the_manager_after_a_grace(
    world: World, ctx: Context
) -> None:
    world.add_lead(owner_id="999", assigned_ago=timedelta(hours=2), name="Tobias Klein")
    run_once(ctx)
    assert world.slack.messages == []
    world.clock.advance(timedelta(minutes=16))
    run_once(ctx)
    assert [m.user_id for m in world.slack.messages] == ["U0MIKE"]


def test_a_pass_visits_each_waiting_lead_once_however_many_wait(world: World, ctx: Context) -> None:
    for i in range(7):  # more leads waiting for their owner than fit in a batch
        world.add_lead(owner_id="102", assigned_ago=timedelta(hours=2), name=f"Lead W{i}")
    run_stage(ctx, "sync")
    summary = evaluate(ctx.agreement, ctx.sessions, world.clock.now, batch_size=2)
    assert (summary.leads, summary.skipped) == (0, 7)


def test_two_evaluations_at_once_never_race_on_the_same_findings(
    world: World, ctx: Context
) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=2))
    run_stage(ctx, "sync")
    inner: list[EvaluateSummary] = []

    def second_worker() -> None:
        inner.append(run_stage(ctx, "evaluate"))  # type: ignore[arg-type]

    # Inside a first pass that holds the lead (its lease on SQLite, its row lock on PostgreSQL).
    first = alone(
        ctx.sessions,
        "evaluate",
        ctx.clock,
        lambda _: _holding_the_lead(ctx, second_worker, world),
        when_busy=EvaluateSummary,
    )
    assert inner[0].leads == 0  # the second judged nothing the first holds
    assert inner[0].already_running == (ctx.engine.dialect.name == "sqlite")
    assert first.leads == 1


def _holding_the_lead(ctx: Context, meanwhile: Callable[[], None], world: World) -> EvaluateSummary:
    """A pass that runs ``meanwhile`` while its first batch is claimed and not yet written."""
    with ctx.sessions() as session:
        if ctx.engine.dialect.name == "postgresql":
            walk = queries.DueWalk()
            assert queries.next_due_ids(session, world.clock.now, 10, walk, claim=True)
        meanwhile()
        session.rollback()
    return evaluate(ctx.agreement, ctx.sessions, world.clock.now)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # row locks
def test_workers_share_a_pass_and_judge_each_lead_once(world: World, ctx: Context) -> None:
    for n, name in enumerate(("Lena Fischer", "Jonas Weber", "Mia Wolf", "Paul Klein")):
        world.add_rep(f"10{n}", name, f"U0REP{n}")
        for i in range(60):
            world.add_lead(owner_id=f"10{n}", assigned_ago=timedelta(hours=2), name=f"L{n} X{i}")
    run_stage(ctx, "sync")
    passes: list[EvaluateSummary] = []
    helpers: list[threading.Thread] = []
    joined = threading.Barrier(3)  # the first pass goes on once both helpers are running

    def one_pass(fan_out: Callable[[], None] | None = None) -> None:
        if fan_out is None:
            joined.wait()
        now = world.clock.now
        passes.append(
            evaluate(ctx.agreement, ctx.sessions, now, batch_size=10, claim=True, fan_out=fan_out)
        )

    def fan_out() -> None:  # as the Celery task does: more workers join the pass
        helpers.extend(threading.Thread(target=one_pass) for _ in range(2))
        for helper in helpers:
            helper.start()
        joined.wait()

    first = threading.Thread(target=one_pass, args=(fan_out,))
    first.start()
    first.join()
    for helper in helpers:
        helper.join()
    assert len(passes) == 3
    assert sum(p.leads for p in passes) == 240  # each lead judged once, by one of them
    assert sum(p.leads > 0 for p in passes) >= 2, [p.leads for p in passes]  # shared
    with ctx.sessions() as session:
        keys = session.scalars(select(OutboxRow.lead_id).where(OutboxRow.level == 0)).all()
    assert len(keys) == len(set(keys)) == 240  # one reminder per lead
