"""Bad CRM data: a value longer than its column never wedges a sync (issue 14, row 1)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.e2e.world import World
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once, run_stage
from worker.store.models import Lead


def test_values_longer_than_their_columns_are_stored_cut_and_the_sync_goes_on(
    world: World, ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    world.add_rep()
    long_lead = world.add_lead(
        assigned_ago=timedelta(hours=2), name="Maria " + "L" * 500, company="C" * 1000
    )
    world.hubspot.upsert_contact(long_lead, phone="+49 " + "1" * 200, hs_lead_status="S" * 150)
    after = world.add_lead(assigned_ago=timedelta(hours=2), name="Tobias Klein")
    with caplog.at_level(logging.WARNING, logger="worker.store.mirror"):
        summary = run_stage(ctx, "sync")
    assert summary.as_dict()["leads"] == 2
    with ctx.sessions() as session:
        leads = {lead.id: lead for lead in session.scalars(select(Lead))}
    stored = leads[long_lead]
    assert stored.last_name == "L" * 200 and stored.company == "C" * 300
    assert stored.phone is not None and len(stored.phone) == 64
    assert stored.status == "S" * 100
    assert after in leads  # the rest of the page, and the pages after it, are stored
    assert "company is 1000 characters, stored cut to 300" in caplog.text
    # A second sync is not wedged on the same page either, and the lead is judged and told.
    world.clock.advance(timedelta(minutes=5))
    run_once(ctx)
    assert len(world.slack.dms_to("U0LENA")) == 1


def test_a_record_whose_id_does_not_fit_is_skipped_alone(
    world: World, ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    world.add_rep()
    good = world.add_lead(assigned_ago=timedelta(hours=2))
    world.add_call(good, at=world.clock.now - timedelta(minutes=90))
    # An engagement with a 200-character id cannot be stored under its key; it is skipped.
    world.hubspot.add_engagement(
        "calls",
        {"hs_timestamp": "2026-11-24T09:00:00.000Z", "hubspot_owner_id": "101"},
        [good],
        id="9" * 200,
    )
    with caplog.at_level(logging.ERROR, logger="worker.store.mirror"):
        run_stage(ctx, "sync")
    assert "is 205 characters (at most 100): skipped" in caplog.text
    run_stage(ctx, "evaluate")
    with ctx.sessions() as session:
        assert session.get(Lead, good) is not None
