"""Judgement races: a lead stored before its owner (sync reads owners first; a rep added
meanwhile) waits for the owner instead of reaching the manager in the rep's place (found by the
broker-restart fault test, where it happened 2 times in 4); two evaluations at once never race
on the same findings (issue 15)."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.world import World
from worker.pipeline.context import Context
from worker.pipeline.evaluate import EvaluateSummary, evaluate
from worker.pipeline.stages import run_once, run_stage
from worker.store.leases import alone


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

    first = alone(
        ctx.sessions,
        "evaluate",
        ctx.clock,
        lambda _: (second_worker(), evaluate(ctx.agreement, ctx.sessions, world.clock.now))[1],
        when_busy=EvaluateSummary,
    )
    assert inner[0].already_running and inner[0].leads == 0
    assert first.leads == 1
