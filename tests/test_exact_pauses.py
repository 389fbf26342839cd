"""Exact pause intervals (issue 15): the sync reads the status history HubSpot keeps
(``propertiesWithHistory``), so a lead paused and resumed between two syncs has its deadline
moved by exactly the paused time — through the real client against the fake, on both stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.world import CONFIG, World, make_world
from worker.pipeline.stages import run_once
from worker.store.models import Finding

PAUSES = CONFIG.replace(
    "    first_touch: 1h\n", "    first_touch: 1h\n    pause_statuses: [BAD_TIMING]\n"
)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, config=PAUSES)


def test_a_pause_between_two_syncs_moves_the_deadline_by_exactly_its_length(
    world: World,
) -> None:
    world.add_rep()
    lead = world.add_lead(assigned_ago=timedelta(0))  # first touch due in 1 h
    assigned = world.clock.now
    with world.context() as ctx:
        run_once(ctx)
        # Between two syncs the rep pauses the lead for 40 minutes ("bad timing, call back").
        world.clock.advance(timedelta(minutes=10))
        world.hubspot.upsert_contact(lead, hs_lead_status="BAD_TIMING")
        world.clock.advance(timedelta(minutes=40))
        world.hubspot.upsert_contact(lead, hs_lead_status="OPEN")
        world.clock.advance(timedelta(minutes=20))  # 70 minutes after assignment
        run_once(ctx)
        assert world.slack.messages == []  # 30 of the 60 minutes left, not breached
        with ctx.sessions() as session:
            deadline = session.scalar(
                select(Finding.deadline_at).where(
                    Finding.lead_id == lead, Finding.rule == "first_touch"
                )
            )
        assert deadline is not None
        assert deadline.replace(tzinfo=assigned.tzinfo) == assigned + timedelta(hours=1, minutes=40)
        world.clock.advance(timedelta(minutes=31))
        run_once(ctx)
        (dm,) = world.slack.dms_to("U0LENA")
        assert "First touch overdue" in dm.text


def test_histories_are_read_50_leads_a_request(world: World) -> None:
    world.add_rep()
    for n in range(120):
        world.add_lead(assigned_ago=timedelta(minutes=5), name=f"Many{n} Lead")
    with world.context() as ctx:
        run_once(ctx)
    reads = [
        json.loads(r.body)
        for r in world.hubspot.requests
        if r.path.endswith("/batch/read") and b"propertiesWithHistory" in r.body
    ]
    assert reads and all(len(body["inputs"]) <= 50 for body in reads)  # HubSpot's limit
    assert len({i["id"] for body in reads for i in body["inputs"]}) == 120


def test_a_history_read_again_unchanged_does_not_make_the_lead_judged_again(
    world: World,
) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(0))
    with world.context() as ctx:
        run_once(ctx)
        world.clock.advance(timedelta(seconds=30))  # inside the sync overlap: read again
        result = run_once(ctx)
    synced, evaluated = result["sync"], result["evaluate"]
    assert isinstance(synced, dict) and synced["leads"] == 1  # read again…
    assert isinstance(evaluated, dict) and evaluated["leads"] == 0  # …but nothing changed
