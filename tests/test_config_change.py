"""Changing the SLA applies to every stored lead (issue 15): the next evaluation after a config
edit judges every tracked lead again under the new rules, not only the ones due by the old."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.world import World
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once


def test_a_shorter_first_touch_deadline_applies_to_leads_already_stored(
    world: World, ctx: Context
) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(minutes=20))
    result = run_once(ctx)  # first touch due in 1h: pending, next check in 25 minutes
    assert world.slack.messages == []
    world.clock.advance(timedelta(minutes=1))
    config = world.config_path.read_text()
    world.config_path.write_text(config.replace("first_touch: 1h", "first_touch: 20m"))
    with world.context() as changed:  # the worker reads the edited file
        result = run_once(changed)
    evaluated = result["evaluate"]
    assert isinstance(evaluated, dict) and evaluated["rejudged"] == 1 and evaluated["leads"] == 1
    (dm,) = world.slack.dms_to("U0LENA")
    assert "First touch overdue" in dm.text
    with world.context() as same:  # the same config again: nothing to re-judge
        again = run_once(same)["evaluate"]
    assert isinstance(again, dict) and again["rejudged"] == 0 and again["leads"] == 0
