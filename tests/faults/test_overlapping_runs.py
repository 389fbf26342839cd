"""Recycle under faults (issue 14, rows 7 and 8): overlapping runs write and announce each lead
once; a run stopped mid-write is finished by the next, and undone to the true before-state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e.world import World, make_world, outbox_rows
from tests.test_recycle import RECYCLE_CONFIG, _worked_lead
from worker.crm.records import CrmLead
from worker.errors import PermanentError
from worker.pipeline import recycle
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once
from worker.store.models import RecycleAudit


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, config=RECYCLE_CONFIG.replace("%(cap)s", "200"))


class _CrmDuring:
    """The context's CRM client, which runs ``during`` inside the first re-read of leads:
    the moment a second beat or an admin's CLI starts another run."""

    def __init__(self, inner: Any, during: Any) -> None:
        self.inner, self.during = inner, during

    def get_leads(self, lead_ids: Sequence[str]) -> dict[str, CrmLead]:
        during, self.during = self.during, None
        if during is not None:
            during()
        result: dict[str, CrmLead] = self.inner.get_leads(lead_ids)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_two_recycle_runs_at_once_write_and_announce_each_lead_once(
    world: World, ctx: Context
) -> None:
    world.slack.add_channel("C0MKT", "marketing-ops")
    world.add_rep()
    leads = [_worked_lead(world, f"Stale Lead{i}") for i in range(20)]
    run_once(ctx)
    second: list[recycle.RecycleSummary] = []
    ctx._crm = _CrmDuring(ctx.crm, lambda: second.append(recycle.run(ctx, ctx.clock())))
    first = recycle.run(ctx, ctx.clock())
    assert first.recycled == 20
    assert second[0].already_running and second[0].recycled == 0
    with ctx.sessions() as session:
        runs = set(session.scalars(select(RecycleAudit.run_id)))
    assert len(runs) == 1
    notices = [r for r in outbox_rows(ctx) if r.kind == "recycled"]
    assert len(notices) == 2 * len(leads)  # the rep and marketing, once per lead
    run_once(ctx)
    assert len(world.slack.messages_in("marketing-ops")) == 1


def test_a_recycle_stopped_between_clear_and_set_is_finished_and_undone_to_the_truth(
    world: World, ctx: Context
) -> None:
    """Issue 14, row 8: HubSpot's lifecycle stage only moves forward, so recycle clears it in
    one batch and sets it in another; a run that stops between them leaves it empty."""
    world.slack.add_channel("C0MKT", "marketing-ops")
    world.add_rep()
    lead = _worked_lead(world, "Stale Lead")
    run_once(ctx)
    rejected = {"status": "error", "message": "boom", "category": "VALIDATION_ERROR"}
    world.hubspot.fail_next(1, 400, rejected, path_contains="batch/update", skip=1)
    with pytest.raises(PermanentError):
        recycle.run(ctx, ctx.clock())
    assert world.hubspot.contact(lead)["lifecyclestage"] in ("", None)  # half-written
    world.clock.advance(timedelta(minutes=1))
    run_once(ctx)  # sync sees the half-written lead; it is still due
    summary = recycle.run(ctx, ctx.clock())
    assert summary.recycled == 1
    (item,) = summary.items
    assert item.before["lifecyclestage"] == "salesqualifiedlead"  # the truth, not ""
    assert world.hubspot.contact(lead)["lifecyclestage"] == "lead"
    restored = recycle.run_undo(ctx, ctx.clock(), summary.run_id)
    assert restored.recycled == 1
    assert world.hubspot.contact(lead)["lifecyclestage"] == "salesqualifiedlead"
    with ctx.sessions() as session:
        outcomes = sorted(session.scalars(select(RecycleAudit.outcome)))
    assert outcomes == ["replaced", "undone"]  # the first run's audit is never undone again
