"""Sync: pull owners, leads and touches changed since the stored cursors into the store.

The cursor moves only with the data it covers, in the same transaction, page by page: a crash
or an error mid-run never skips a record, and re-reading the overlap is harmless (upserts).
It never judges a lead; it only marks changed leads dirty for evaluate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from worker.crm.client import SEARCH_RESULT_CAP, CrmClient
from worker.crm.records import CrmLead, CrmTouch, Page
from worker.store import mirror
from worker.store.db import session_scope

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T", CrmLead, CrmTouch)


@dataclass
class SyncSummary:
    owners: int = 0
    leads: int = 0
    leads_changed: int = 0
    touches: int = 0
    skipped: int = 0
    pages: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "owners": self.owners,
            "leads": self.leads,
            "leads_changed": self.leads_changed,
            "touches": self.touches,
            "skipped": self.skipped,
            "pages": self.pages,
        }


def sync(
    crm: CrmClient,
    sessions: Callable[[], Session],
    now: datetime,
    *,
    touch_kinds: tuple[str, ...],
    cursor_prefix: str,
    overlap: timedelta,
    page_size: int = 100,
) -> SyncSummary:
    """One incremental pass over owners, leads and each touch kind."""
    summary = SyncSummary()
    owners = crm.list_owners()
    with session_scope(sessions) as session:
        for owner in owners:
            mirror.upsert_owner(session, owner, now)
    summary.owners = len(owners)

    def store_leads(session: Session, page: Page[CrmLead]) -> None:
        for lead in page.items:
            summary.leads += 1
            if mirror.upsert_lead(session, lead, now):
                summary.leads_changed += 1

    _sync_stream(
        f"{cursor_prefix}:leads",
        lambda since, after: crm.search_leads_changed_since(since, after=after),
        store_leads,
        sessions,
        now,
        overlap,
        page_size,
        summary,
    )
    for kind in touch_kinds:

        def store_touches(session: Session, page: Page[CrmTouch]) -> None:
            for touch in page.items:
                summary.touches += 1
                mirror.upsert_touch(session, touch, now)

        def fetch(since: datetime, after: str | None, kind: str = kind) -> Page[CrmTouch]:
            return crm.search_touches_changed_since(kind, since, after=after)

        _sync_stream(
            f"{cursor_prefix}:touches:{kind}",
            fetch,
            store_touches,
            sessions,
            now,
            overlap,
            page_size,
            summary,
        )
    return summary


def _sync_stream(
    name: str,
    fetch: Callable[[datetime, str | None], Page[T]],
    store: Callable[[Session, Page[T]], None],
    sessions: Callable[[], Session],
    now: datetime,
    overlap: timedelta,
    page_size: int,
    summary: SyncSummary,
) -> None:
    """Page through one stream from its cursor, committing each page with the cursor.

    Search stops at 10,000 results per query, so before reaching the cap the query restarts
    from the last modified time seen (records on that same instant are read again: upserts
    make that harmless).
    """
    with session_scope(sessions) as session:
        stored = mirror.cursor_at(session, name)
    since = max(EPOCH, stored - overlap) if stored else EPOCH
    after: str | None = None
    while True:
        page = fetch(since, after)
        summary.pages += 1
        summary.skipped += page.skipped
        with session_scope(sessions) as session:
            store(session, page)
            if page.items:
                newest = max(item.modified_at for item in page.items)
                mirror.advance_cursor(session, name, newest, now)
        if page.next_after is None:
            return
        try:
            offset = int(page.next_after)
        except ValueError:
            offset = 0
        if offset + page_size > SEARCH_RESULT_CAP:
            newest = max((item.modified_at for item in page.items), default=since)
            if newest <= since:
                log.error(
                    "sync %s: more than %d records share the modified time %s; "
                    "the rest of them are read on a later pass",
                    name,
                    SEARCH_RESULT_CAP,
                    since.isoformat(),
                )
                return
            since, after = newest, None
        else:
            after = page.next_after
