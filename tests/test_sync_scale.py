"""Sync at a real portal's scale: more than twice the search cap, failures and edits mid-paging.

The real HubSpot client against the fake over loopback, into the real store on SQLite and
PostgreSQL; the assertions compare every record in the store with the fake's latest state.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.test_fake_hubspot import TOKEN, Clock
from worker.crm.hubspot import HubSpotClient
from worker.fakes.hubspot import FakeHubSpot
from worker.pipeline.sync import sync
from worker.store.models import Lead, Touch, TouchLead

CONTACTS = 25_000
PER_KIND = 25_000  # calls, emails and meetings: 75,000 activities
STATUS_PROPERTY = {
    "calls": "hs_call_status",
    "emails": "hs_email_status",
    "meetings": "hs_meeting_outcome",
}


def _instant(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _seed(fake: FakeHubSpot, clock: Clock) -> dict[str, list[str]]:
    fake.add_owner("101", "lena@example.com", "Lena", "Fischer")
    contacts = []
    for i in range(CONTACTS):
        contacts.append(
            fake.upsert_contact(firstname=f"c{i}", hubspot_owner_id="101", hs_lead_status="NEW")
        )
        if i % 7 == 0:  # ties of seven on one millisecond
            clock.advance(milliseconds=3)
    ids: dict[str, list[str]] = {"contacts": contacts}
    for kind in ("calls", "emails", "meetings"):
        ids[kind] = []
        for i in range(PER_KIND):
            props = {"hs_timestamp": "2026-11-19T09:00:00.000Z", "hubspot_owner_id": "101"}
            if kind == "calls":
                props |= {"hs_call_status": "COMPLETED", "hs_call_duration": "60000"}
            if kind == "emails":
                props |= {"hs_email_status": "SENT", "hs_email_direction": "EMAIL"}
            if kind == "meetings":
                props |= {"hs_meeting_outcome": "COMPLETED"}
            # Every 50th activity involves two contacts.
            on = [contacts[i % CONTACTS]] + ([contacts[(i + 1) % CONTACTS]] if i % 50 == 0 else [])
            ids[kind].append(fake.add_engagement(kind, props, on))
            if i % 5 == 0:
                clock.advance(milliseconds=2)
    # A bulk import touches 450 contacts on one instant: more than a page shares a timestamp.
    clock.advance(seconds=1)
    for contact_id in contacts[1000:1450]:
        fake.upsert_contact(contact_id, hs_lead_status="OPEN")
    return ids


def _edit_while_paging(fake: FakeHubSpot, clock: Clock, ids: dict[str, list[str]]) -> Counter[str]:
    """Every 10th search of a kind edits three random records of that kind, read or not yet."""
    rng = random.Random(11)
    searches: Counter[str] = Counter()
    edits: Counter[str] = Counter()

    def edit(kind: str, body: dict[str, Any]) -> None:
        searches[kind] += 1
        if searches[kind] % 10:
            return
        clock.advance(seconds=1)
        for record_id in rng.sample(ids[kind], 3):
            edits[kind] += 1
            if kind == "contacts":
                fake.upsert_contact(record_id, firstname=f"edited-{edits[kind]}")
            else:
                fake.update_engagement(kind, record_id, **{STATUS_PROPERTY[kind]: "EDITED"})

    fake.during_search(edit)
    return edits


@pytest.mark.slow
def test_sync_of_25000_contacts_and_75000_activities_loses_and_duplicates_nothing(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    fake = FakeHubSpot(TOKEN, clock=clock)
    ids = _seed(fake, clock)
    edits = _edit_while_paging(fake, clock, ids)
    fake.fail_randomly(0.02, 429, seed=7)
    fake.fail_randomly(0.01, 500)
    fake.start()
    try:
        client = HubSpotClient(
            fake.base_url,
            TOKEN,
            page_size=200,
            max_retries=8,
            sleep=lambda seconds: clock.advance(seconds=seconds),
        )
        started = time.perf_counter()
        summary = sync(
            client,
            sessions,
            clock.now,
            touch_kinds=("call", "email", "meeting"),
            cursor_prefix="hubspot",
            overlap=timedelta(minutes=5),
        )
        elapsed = time.perf_counter() - started
    finally:
        fake.stop()
    print(f"sync took {elapsed:.1f}s: {summary.as_dict()} fake answers {dict(fake.counts)}")

    # Both kinds of failure happened, at about the rates asked for, and edits were made.
    answered = sum(fake.counts.values())
    assert 0.015 * answered < fake.counts["injected"] < 0.045 * answered
    assert edits["contacts"] >= 9 and edits["calls"] >= 9

    expected = fake.contacts()
    with sessions() as session:
        leads = {
            row.id: row
            for row in session.execute(
                select(Lead.id, Lead.first_name, Lead.status, Lead.modified_at)
            )
        }
        touches = {
            row.id: row
            for row in session.execute(select(Touch.id, Touch.status, Touch.modified_at))
        }
        links = {
            (t, lead) for t, lead in session.execute(select(TouchLead.touch_id, TouchLead.lead_id))
        }
    assert len(leads) == CONTACTS == len(expected)
    stale = [
        contact_id
        for contact_id, props in expected.items()
        if (leads[contact_id].first_name, leads[contact_id].status, leads[contact_id].modified_at)
        != (props["firstname"], props["hs_lead_status"], _instant(props["lastmodifieddate"]))
    ]
    assert stale == []

    assert len(touches) == 3 * PER_KIND
    expected_links = set()
    stale = []
    for kind, status_property in STATUS_PROPERTY.items():
        prefix = kind.rstrip("s")
        for props in fake.engagements(kind):
            key = f"{prefix}:{props['hs_object_id']}"
            row = touches[key]
            latest = (props[status_property], _instant(props["hs_lastmodifieddate"]))
            if (row.status, row.modified_at) != latest:
                stale.append(key)
            expected_links |= {
                (key, contact) for contact in fake.contact_ids_of(kind, str(props["hs_object_id"]))
            }
    assert stale == []
    assert links == expected_links
