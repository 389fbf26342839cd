"""Sync through the real HubSpot client and the fake: keyset paging, ties, edits mid-paging,
archived and merged contacts, and an owner change restarting the first-touch clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.e2e.world import World
from tests.test_fake_hubspot import TOKEN, Clock
from worker.crm.hubspot import HubSpotClient
from worker.fakes.hubspot import FakeHubSpot
from worker.pipeline.stages import run_once
from worker.pipeline.sync import SyncSummary, sync
from worker.store.models import Finding, Lead


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(TOKEN, clock=clock) as hubspot:
        yield hubspot


def _sync(fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock) -> SyncSummary:
    client = HubSpotClient(fake.base_url, TOKEN, page_size=10)
    return sync(
        client,
        sessions,
        clock.now,
        touch_kinds=("call",),
        cursor_prefix="hubspot",
        overlap=timedelta(minutes=5),
    )


def _leads(sessions: sessionmaker[Session]) -> dict[str, Lead]:
    with sessions() as session:
        return {lead.id: lead for lead in session.scalars(select(Lead))}


def _contact_searches(fake: FakeHubSpot) -> list[dict[str, Any]]:
    path = "/crm/v3/objects/contacts/search"
    return [json.loads(r.body) for r in fake.requests if r.path == path]


def test_sync_reads_more_leads_on_one_instant_than_fit_on_a_page(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    early = fake.upsert_contact(firstname="early")
    clock.advance(seconds=1)
    tied = [fake.upsert_contact(firstname=f"tied{i}") for i in range(45)]  # one instant
    clock.advance(seconds=1)
    late = fake.upsert_contact(firstname="late")
    _sync(fake, sessions, clock)
    assert set(_leads(sessions)) == {early, late, *tied}
    # The tie was drained in id order, one query per page, then the search went on after it.
    sorts = [body["sorts"][0]["propertyName"] for body in _contact_searches(fake)]
    assert "hs_object_id" in sorts
    assert sorts[-1] == "lastmodifieddate"


def test_a_page_ending_inside_an_instant_is_not_read_again(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    # Three records per instant, ten to a page: most pages end inside an instant. Resuming
    # *at* that instant used to read its records on the page again (+38 % reads over 100k).
    for i in range(60):
        fake.upsert_contact(firstname=f"n{i}")
        if i % 3 == 2:
            clock.advance(seconds=1)
    summary = _sync(fake, sessions, clock)
    assert len(_leads(sessions)) == 60
    assert summary.leads == 60  # every record read exactly once
    assert summary.by_stream["hubspot:leads"] == 6  # six pages of ten


def test_a_record_read_at_a_page_boundary_and_edited_while_paging_is_read_again(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    ids = []
    for i in range(15):
        ids.append(fake.upsert_contact(firstname=f"n{i}"))
        if i % 3 == 2:
            clock.advance(seconds=1)
    searches: list[int] = []

    def edit(kind: str, body: dict[str, Any]) -> None:
        searches.append(1)
        if len(searches) == 2:  # page 1 ended inside an instant (ids 9 of 10, 11, 12)
            clock.advance(seconds=1)
            fake.upsert_contact(ids[9], firstname="edited-after-read")

    fake.during_search(edit)
    _sync(fake, sessions, clock)
    assert _leads(sessions)[ids[9]].first_name == "edited-after-read"


def test_sync_starts_every_page_as_a_new_query_never_paging_with_after(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    for i in range(35):
        fake.upsert_contact(firstname=f"n{i}")
        clock.advance(seconds=1)
    summary = _sync(fake, sessions, clock)
    bodies = _contact_searches(fake)
    assert len(_leads(sessions)) == 35
    assert all("after" not in body for body in bodies)
    assert summary.by_stream["hubspot:leads"] == len(bodies) == 4


def test_a_lead_edited_while_paging_is_stored_in_its_latest_state(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    ids = []
    for i in range(30):
        ids.append(fake.upsert_contact(firstname=f"n{i}"))
        clock.advance(seconds=1)
    searches: list[int] = []

    def edit(kind: str, body: dict[str, Any]) -> None:
        searches.append(1)
        if len(searches) == 2:  # after the first page was read: one read, one not yet read
            clock.advance(seconds=1)
            fake.upsert_contact(ids[0], firstname="edited-read")
            fake.upsert_contact(ids[25], firstname="edited-unread")

    fake.during_search(edit)
    _sync(fake, sessions, clock)
    leads = _leads(sessions)
    assert len(leads) == 30
    assert leads[ids[0]].first_name == "edited-read"
    assert leads[ids[25]].first_name == "edited-unread"


def test_an_older_copy_read_late_does_not_overwrite_the_stored_one(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    lead = fake.upsert_contact(firstname="new")
    _sync(fake, sessions, clock)
    # Search index lag: HubSpot answers with an older copy of the record.
    fake.upsert_contact(lead, firstname="old", lastmodifieddate="2026-11-01T00:00:00.000Z")
    clock.advance(minutes=1)
    _sync(fake, sessions, clock)
    assert _leads(sessions)[lead].first_name == "new"


def test_an_archived_contact_stops_being_tracked(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    kept, gone = fake.upsert_contact(firstname="kept"), fake.upsert_contact(firstname="gone")
    _sync(fake, sessions, clock)
    fake.archive_contact(gone)
    clock.advance(minutes=2)
    summary = _sync(fake, sessions, clock)
    leads = _leads(sessions)
    assert (leads[kept].archived, leads[gone].archived) == (False, True)
    assert leads[gone].dirty is True  # evaluate resolves what it had open for it
    assert summary.archived == 1
    assert _sync(fake, sessions, clock).archived == 0  # counted once


def test_a_merged_contact_stops_being_tracked_and_its_survivor_stays(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    survivor, merged = fake.upsert_contact(firstname="Ann"), fake.upsert_contact(firstname="A.")
    _sync(fake, sessions, clock)
    clock.advance(minutes=2)
    fake.merge_contacts(survivor, merged)
    _sync(fake, sessions, clock)
    leads = _leads(sessions)
    assert (leads[survivor].archived, leads[merged].archived) == (False, True)


def test_activity_on_an_already_synced_lead_makes_it_dirty_again(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    lead = fake.upsert_contact(firstname="Ann", hubspot_owner_id="101")
    _sync(fake, sessions, clock)
    with sessions() as session:
        row = session.get(Lead, lead)
        assert row is not None
        row.dirty = False
        session.commit()
    clock.advance(minutes=10)
    fake.add_engagement(
        "calls", {"hs_timestamp": "2026-11-20T09:05:00.000Z", "hubspot_owner_id": "101"}, [lead]
    )
    summary = _sync(fake, sessions, clock)
    assert summary.touches == 1
    assert _leads(sessions)[lead].dirty is True


# -- end to end: an owner change restarts the first-touch clock ---------------------------------
def test_an_owner_change_restarts_the_first_touch_clock(world: World) -> None:
    with world.context() as ctx:
        world.add_rep("101", "Lena Fischer", "U0LENA")
        world.add_rep("102", "Jonas Weber", "U0JONAS")
        lead = world.add_lead(owner_id="101", assigned_ago=timedelta(hours=2))
        run_once(ctx)
        with ctx.sessions() as session:
            before = session.get(Finding, (lead, "first_touch"))
            assert before is not None and before.state == "breached"
        world.clock.advance(timedelta(minutes=10))
        world.hubspot.upsert_contact(lead, hubspot_owner_id="102")  # stamps the assignment
        run_once(ctx)
        with ctx.sessions() as session:
            after = session.get(Finding, (lead, "first_touch"))
            row = session.get(Lead, lead)
            assert row is not None and after is not None
            assert row.owner_assigned_at == world.clock.now
            assert after.started_at == world.clock.now
            assert after.deadline_at == world.clock.now + timedelta(hours=1)
            assert after.state == "pending"
        assert world.slack.dms_to("U0JONAS") == []  # the new owner is not blamed


def test_after_a_bulk_edit_a_quiet_portal_costs_a_quiet_sync(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    ids = []
    for i in range(60):  # a bulk edit: 60 contacts changed within a minute
        ids.append(fake.upsert_contact(firstname=f"bulk{i}"))
        clock.advance(seconds=1)
    searches = []
    for _ in range(4):  # a sync every ten minutes, nothing changes in the CRM
        before = len(_contact_searches(fake))
        _sync(fake, sessions, clock)
        searches.append(len(_contact_searches(fake)) - before)
        clock.advance(minutes=10)
    assert set(_leads(sessions)) == set(ids)
    # The first pass reads the edit (page size 10); a pass within the overlap of it reads it
    # again at most once; from then on each pass is a single empty search.
    assert searches[0] >= 6
    assert searches[2:] == [1, 1]
    # A record changed later is still found: the cursor never skips.
    late = fake.upsert_contact(firstname="late")
    _sync(fake, sessions, clock)
    assert late in _leads(sessions)
