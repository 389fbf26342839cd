"""Sync reads the next page while it stores one, and the leads of up to 1,000 touches at once:
through the real HubSpot client and the fake, a failure mid-pass skips nothing and leaves no
request behind, and every touch is stored with its leads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.test_fake_hubspot import TOKEN, Clock
from worker.crm.hubspot import HubSpotClient
from worker.errors import TransientError
from worker.fakes.hubspot import FakeHubSpot
from worker.pipeline.sync import READ_AHEAD_PAGES, SyncSummary, sync
from worker.store.models import Lead, Touch, TouchLead

CONTACT_SEARCH = "/crm/v3/objects/contacts/search"
CALL_LEADS = "/crm/v4/associations/calls/contacts/batch/read"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(TOKEN, clock=clock) as hubspot:
        yield hubspot


def _sync(
    fake: FakeHubSpot,
    sessions: sessionmaker[Session],
    clock: Clock,
    *,
    page_size: int = 10,
    heartbeat: Callable[[], None] = lambda: None,
) -> SyncSummary:
    return sync(
        HubSpotClient(fake.base_url, TOKEN, page_size=page_size),
        sessions,
        clock.now,
        touch_kinds=("call",),
        cursor_prefix="hubspot",
        overlap=timedelta(minutes=5),
        heartbeat=heartbeat,
    )


def _contacts(fake: FakeHubSpot, clock: Clock, n: int) -> list[str]:
    ids = []
    for i in range(n):
        ids.append(fake.upsert_contact(firstname=f"n{i}"))
        clock.advance(minutes=10)  # one change each, further apart than the overlap
    return ids


def _stored_leads(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return sorted(session.scalars(select(Lead.id)), key=int)


def _bodies(fake: FakeHubSpot, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in fake.requests if r.path == path]


def _read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sync-read-ahead")]


def test_a_page_that_fails_while_read_ahead_stops_the_pass_after_the_pages_before_it(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    ids = _contacts(fake, clock, 55)
    fake.fail_next(1, 500, path_contains=CONTACT_SEARCH, skip=3)  # the fourth page
    with pytest.raises(TransientError, match="HTTP 500"):
        _sync(fake, sessions, clock)
    # Pages 1-3 were read ahead and stored, each with the cursor; nothing of page 4 or after.
    assert _stored_leads(sessions) == ids[:30]
    summary = _sync(fake, sessions, clock)
    assert _stored_leads(sessions) == ids
    # The next pass went on from the last stored record (read again: the overlap), no gap.
    assert summary.leads == 26


def test_a_pass_stopped_while_storing_leaves_no_request_in_flight(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    ids = _contacts(fake, clock, 95)
    stored_pages = []

    def lease_lost() -> None:
        stored_pages.append(1)
        if len(stored_pages) == 2:
            raise RuntimeError("the lease was taken over")

    with pytest.raises(RuntimeError, match="lease"):
        _sync(fake, sessions, clock, heartbeat=lease_lost)
    assert _read_ahead_threads() == []  # the request in flight was waited for
    assert len(_bodies(fake, CONTACT_SEARCH)) <= 2 + READ_AHEAD_PAGES
    assert _stored_leads(sessions) == ids[:20]
    _sync(fake, sessions, clock)
    assert _stored_leads(sessions) == ids


def test_records_edited_while_pages_are_read_ahead_are_all_stored_in_their_last_state(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    ids = _contacts(fake, clock, 60)
    searches: list[str] = []

    def edit(kind: str, body: dict[str, Any]) -> None:
        searches.append(kind)
        if len(searches) in (2, 4):  # an early record moves behind the pages read ahead
            clock.advance(seconds=1)
            fake.upsert_contact(ids[len(searches)], firstname=f"edited{len(searches)}")

    fake.during_search(edit)
    _sync(fake, sessions, clock)
    with sessions() as session:
        names = dict(session.execute(select(Lead.id, Lead.first_name)).all())
    assert sorted(names, key=int) == ids
    assert (names[ids[2]], names[ids[4]]) == ("edited2", "edited4")


def test_the_leads_of_touches_are_read_1000_touches_a_request_and_every_touch_has_them(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    contacts = [fake.upsert_contact(firstname=f"n{i}") for i in range(3)]
    calls = []
    for i in range(2100):
        calls.append(
            fake.add_engagement("calls", {"hs_timestamp": "1763629200000"}, [contacts[i % 3]])
        )
        clock.advance(seconds=1)
    alone = fake.add_engagement("calls", {"hs_timestamp": "1763629200000"}, [])
    summary = _sync(fake, sessions, clock, page_size=200)
    reads = _bodies(fake, CALL_LEADS)
    # 11 search pages of 200, their leads read in three requests instead of eleven.
    assert [len(body["inputs"]) for body in reads] == [1000, 1000, 101]
    assert sorted(i["id"] for body in reads for i in body["inputs"]) == sorted([*calls, alone])
    with sessions() as session:
        links = dict(session.execute(select(TouchLead.touch_id, TouchLead.lead_id)).all())
        touches = set(session.scalars(select(Touch.id)))
    assert links == {f"call:{call}": contacts[i % 3] for i, call in enumerate(calls)}
    assert touches == {f"call:{call}" for call in [*calls, alone]}
    assert summary.touches == 2101


def test_a_failed_read_of_touches_leads_stores_none_of_those_touches(
    fake: FakeHubSpot, sessions: sessionmaker[Session], clock: Clock
) -> None:
    contact = fake.upsert_contact(firstname="Ann")
    for _ in range(25):
        fake.add_engagement("calls", {"hs_timestamp": "1763629200000"}, [contact])
        clock.advance(seconds=1)
    fake.fail_next(1, 502, path_contains=CALL_LEADS)
    with pytest.raises(TransientError):
        _sync(fake, sessions, clock)
    with sessions() as session:
        assert list(session.scalars(select(Touch.id))) == []  # never without their leads
    _sync(fake, sessions, clock)
    with sessions() as session:
        assert len(list(session.scalars(select(TouchLead.touch_id)))) == 25
