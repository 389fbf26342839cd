"""A lead stored before its owner (sync reads owners first; a rep added meanwhile): its
reminder waits for the owner instead of going to the manager in the rep's place. Found by the
broker-restart fault test, where it happened 2 times in 4."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.world import World
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once


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
