"""Recycling stale leads back to marketing, end to end against the fake HubSpot: exactly the
eligible leads, the right properties, never a lead touched since it was judged, an undo that
restores, a dry run that writes nothing, a cap that holds, and notices to rep and marketing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.world import CONFIG, World, make_world, outbox_rows
from tests.test_cli import run as run_cli
from worker.pipeline import recycle
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once, run_stage
from worker.store.models import RecycleAudit

RECYCLE_CONFIG = (
    CONFIG.replace(
        "    first_touch: 1h\n    warn_before: 15m\n",
        "    first_touch: 1h\n    warn_before: 15m\n"
        "    follow_up: {touches: 2, within: 1d}\n    min_open: 2d\n    recycle_after: 1d\n",
    )
    + """
recycle:
  set: {lifecyclestage: lead, hs_lead_status: RECYCLED}
  clear_owner: true
  max_per_run: %(cap)s
  notify_channel: "#marketing-ops"
"""
)


@pytest.fixture(params=[200])
def cap(request: pytest.FixtureRequest) -> int:
    value: int = request.param
    return value


@pytest.fixture
def world(tmp_path: Path, database_url: str, cap: int) -> Iterator[World]:
    yield from make_world(
        tmp_path, database_url, config=RECYCLE_CONFIG.replace("%(cap)s", str(cap))
    )


def _worked_lead(world: World, name: str, *, days_ago: int = 5) -> str:
    """A lead worked on its first day (two calls), then left alone: recycle is due."""
    lead = world.add_lead(assigned_ago=timedelta(days=days_ago), name=name)
    assigned = world.clock.now - timedelta(days=days_ago)
    world.add_call(lead, at=assigned + timedelta(minutes=20))
    world.add_call(lead, at=assigned + timedelta(hours=3))
    world.hubspot.upsert_contact(lead, lifecyclestage="salesqualifiedlead")
    return lead


def _setup(world: World) -> dict[str, str]:
    world.slack.add_channel("C0MKT", "marketing-ops")
    world.add_rep()
    leads = {
        "stale": _worked_lead(world, "Stale Lead"),
        "fresh": world.add_lead(assigned_ago=timedelta(hours=1), name="Fresh Lead"),
        "meeting": _worked_lead(world, "Meeting Lead"),
        "opportunity": _worked_lead(world, "Deal Lead"),
    }
    world.hubspot.add_engagement(
        "meetings",
        {
            "hs_timestamp": (world.clock.now + timedelta(days=2)).strftime(
                "%Y-%m-%dT%H:%M:%S.000Z"
            ),
            "hubspot_owner_id": "101",
            "hs_meeting_outcome": "SCHEDULED",
        },
        [leads["meeting"]],
    )
    world.hubspot.upsert_contact(leads["opportunity"], lifecyclestage="opportunity")
    return leads


def test_exactly_the_eligible_leads_are_recycled_with_the_right_properties(
    world: World, ctx: Context
) -> None:
    leads = _setup(world)
    run_once(ctx)
    summary = run_stage(ctx, "recycle")
    assert (summary.due, summary.recycled) == (3, 1)
    stale = world.hubspot.contact(leads["stale"])
    assert stale["lifecyclestage"] == "lead"
    assert stale["hs_lead_status"] == "RECYCLED"
    assert not stale.get("hubspot_owner_id")
    for other in ("fresh", "meeting", "opportunity"):
        assert world.hubspot.contact(leads[other])["hs_lead_status"] == "OPEN"
    outcomes = {item.name: item.outcome for item in summary.items}
    assert outcomes["Meeting Lead"] == "skipped: a meeting is booked"
    assert outcomes["Deal Lead"] == "skipped: lifecycle stage opportunity"


def test_a_stale_lead_without_its_touches_is_escalated_not_recycled(
    world: World, ctx: Context
) -> None:
    world.slack.add_channel("C0MKT", "marketing-ops")
    world.add_rep()
    lead = world.add_lead(assigned_ago=timedelta(days=5), name="Half Worked")
    world.add_call(lead, at=world.clock.now - timedelta(days=5) + timedelta(minutes=20))
    run_once(ctx)
    summary = run_stage(ctx, "recycle")
    assert (summary.due, summary.recycled) == (0, 0)  # one of two touches: not marketing's yet
    assert world.hubspot.contact(lead)["hs_lead_status"] == "OPEN"
    overdue = [m for m in world.slack.dms_to("U0LENA") if "Follow-up" in m.text]
    assert overdue  # sales' breach goes up the ladder instead: the rep, then the manager
    assert any("Half Worked" in m.text + str(m.blocks) for m in world.slack.dms_to("U0MIKE"))
    assert world.slack.messages_in("marketing-ops") == []


def test_the_rep_and_marketing_hear_of_it_once(world: World, ctx: Context) -> None:
    _setup(world)
    run_once(ctx)
    run_stage(ctx, "recycle")
    run_once(ctx)
    (post,) = world.slack.messages_in("marketing-ops")
    assert "Recycled to marketing" in post.text and "Stale Lead" in post.text
    rep_messages = [m for m in world.slack.dms_to("U0LENA") if "Recycled" in m.text]
    assert len(rep_messages) == 1
    run_once(ctx)
    assert len(world.slack.messages_in("marketing-ops")) == 1


def test_a_lead_touched_after_judgement_is_not_recycled(world: World, ctx: Context) -> None:
    leads = _setup(world)
    run_once(ctx)
    world.clock.advance(timedelta(minutes=5))
    world.add_call(leads["stale"])  # the rep acts before the recycle run
    summary = run_stage(ctx, "recycle")
    assert summary.recycled == 0
    assert world.hubspot.contact(leads["stale"])["hs_lead_status"] == "OPEN"
    (item,) = [i for i in summary.items if i.name == "Stale Lead"]
    assert item.outcome == "skipped: changed in the CRM since it was judged"


def test_undo_restores_the_previous_values(world: World, ctx: Context) -> None:
    leads = _setup(world)
    run_once(ctx)
    run_id = run_stage(ctx, "recycle").run_id
    restored = recycle.run_undo(ctx, ctx.clock(), run_id)
    assert restored.recycled == 1
    stale = world.hubspot.contact(leads["stale"])
    assert stale["lifecyclestage"] == "salesqualifiedlead"
    assert stale["hs_lead_status"] == "OPEN"
    assert stale["hubspot_owner_id"] == "101"
    with ctx.sessions() as session:
        assert [a.outcome for a in session.scalars(select(RecycleAudit))] == ["undone"]


def test_undo_skips_and_lists_a_lead_changed_in_the_crm_since_the_run(
    world: World, ctx: Context
) -> None:
    world.add_rep()
    leads = [_worked_lead(world, f"Stale N{i}") for i in range(2)]
    run_once(ctx)
    run_id = run_stage(ctx, "recycle").run_id
    # Marketing passes one of them to another rep before anyone undoes the run.
    world.hubspot.upsert_contact(leads[0], hubspot_owner_id="102", hs_lead_status="NEW")
    restored = recycle.run_undo(ctx, ctx.clock(), run_id)
    assert (restored.recycled, restored.skipped) == (1, 1)
    skipped = next(i for i in restored.items if i.lead_id == leads[0])
    assert skipped.outcome.startswith("skipped: changed in the CRM since the run")
    assert "hubspot_owner_id" in skipped.outcome and "hs_lead_status" in skipped.outcome
    assert world.hubspot.contact(leads[0])["hubspot_owner_id"] == "102"  # not overwritten
    assert world.hubspot.contact(leads[1])["hubspot_owner_id"] == "101"  # restored


def test_a_dry_run_undo_lists_and_writes_nothing(world: World, ctx: Context) -> None:
    leads = _setup(world)
    run_once(ctx)
    run_id = run_stage(ctx, "recycle").run_id
    recycled = world.hubspot.contact(leads["stale"])
    preview = recycle.run_undo(ctx, ctx.clock(), run_id, dry_run=True)
    assert [(i.lead_id, i.outcome) for i in preview.items] == [(leads["stale"], "would restore")]
    assert world.hubspot.contact(leads["stale"]) == recycled
    with ctx.sessions() as session:
        assert [a.outcome for a in session.scalars(select(RecycleAudit))] == ["done"]


def test_undo_of_an_unknown_run_says_so_and_fails(world: World) -> None:
    done = run_cli("recycle", "--undo", "no-such-run", env=world.env())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no recycle run 'no-such-run'" in done.stdout


def test_a_dry_run_writes_nothing(world: World, ctx: Context) -> None:
    leads = _setup(world)
    run_once(ctx)
    before = world.hubspot.contact(leads["stale"])
    summary = run_stage(ctx, "recycle", dry_run=True)
    assert summary.recycled == 1
    (item,) = [i for i in summary.items if i.outcome == "would recycle"]
    assert item.before["hs_lead_status"] == "OPEN" and item.after["hs_lead_status"] == "RECYCLED"
    assert world.hubspot.contact(leads["stale"]) == before
    with ctx.sessions() as session:
        assert session.scalars(select(RecycleAudit)).all() == []
    assert [r for r in outbox_rows(ctx) if r.kind == "recycled"] == []


@pytest.mark.parametrize("cap", [2], indirect=True)
def test_the_per_run_cap_holds(world: World, ctx: Context) -> None:
    world.add_rep()
    leads = [_worked_lead(world, f"Stale N{i}") for i in range(3)]
    run_once(ctx)
    summary = run_stage(ctx, "recycle")
    assert (summary.recycled, summary.waiting) == (2, 1)
    recycled = [
        lead for lead in leads if world.hubspot.contact(lead)["hs_lead_status"] == "RECYCLED"
    ]
    assert len(recycled) == 2


def test_a_lead_with_an_open_deal_is_never_recycled(world: World, ctx: Context) -> None:
    world.add_rep()
    open_deal = _worked_lead(world, "Open Deal Lead")
    closed_deal = _worked_lead(world, "Closed Deal Lead")
    world.hubspot.add_deal(stage="contractsent", contact_ids=[open_deal])
    world.hubspot.add_deal(stage="closedlost", contact_ids=[closed_deal])
    run_once(ctx)
    summary = run_stage(ctx, "recycle")
    assert summary.recycled == 1
    assert world.hubspot.contact(open_deal)["hs_lead_status"] == "OPEN"
    assert world.hubspot.contact(closed_deal)["hs_lead_status"] == "RECYCLED"
    outcomes = {item.name: item.outcome for item in summary.items}
    assert outcomes["Open Deal Lead"] == "skipped: it has an open deal"
