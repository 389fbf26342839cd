"""`explain` lists the messages actually sent about a lead, and to whom."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.world import World
from worker.explain import explain_text
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once


def test_explain_lists_each_message_sent_about_the_lead_and_its_recipient(
    world: World, ctx: Context
) -> None:
    world.add_rep()
    lead_id = world.add_lead(assigned_ago=timedelta(hours=3, minutes=30))
    other = world.add_lead(assigned_ago=timedelta(minutes=10), name="Other Lead")
    run_once(ctx)  # breached 2h30m ago: the rep at the breach, the manager 2 h after it

    text = explain_text(ctx, lead_id, ctx.clock())
    sent = text[text.index("Messages sent about it (kept 90d):") :].splitlines()[1:]
    assert any("breach reminder (first touch) to lena@example.com" in line for line in sent)
    assert any(
        "escalation (first touch, level 1) to mike.manager@example.com" in line for line in sent
    )
    assert "Messages sent about it" not in explain_text(ctx, other, ctx.clock())
