"""Sync: pull owners, leads and touches changed since the stored cursors into the store.

Each stream is read by keyset paging (every page a new search that starts at the last record
stored), so the search's 10,000-result cap is never reached and records modified while we page
are read again later instead of being skipped. The cursor moves only with the data it covers, in
the same transaction, page by page: a crash or an error mid-run never skips a record, and
re-reading the overlap is harmless (upserts keep the newest copy). It never judges a lead; it
only marks changed leads dirty for evaluate, and archived or merged leads as no longer tracked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from worker.crm.client import CrmClient
from worker.crm.records import CrmLead, CrmTouch, Page, SearchFrom
from worker.errors import AuthError, PermanentError
from worker.pipeline.context import Context
from worker.pipeline.summary import DETAIL, Summary
from worker.store import mirror, outbox
from worker.store.db import session_scope
from worker.store.leases import Lease, alone

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T", CrmLead, CrmTouch)


@dataclass
class SyncSummary(Summary):
    #: Skipped: another worker holds the sync lease (see worker/store/leases.py).
    already_running: bool = False
    owners: int = 0
    leads: int = 0
    leads_changed: int = 0
    archived: int = 0
    touches: int = 0
    skipped: int = 0
    pages: int = 0
    by_stream: dict[str, int] = field(default_factory=dict, metadata=DETAIL)


def run(ctx: Context, now: datetime) -> SyncSummary:
    """The stage: one sync pass, unless another worker runs one (a lease: each would spend the
    same CRM request budget on the same pages); whether the CRM accepted our credentials is
    kept for ``health``."""
    return alone(
        ctx.sessions,
        "sync",
        ctx.clock,
        lambda lease: _sync_holding_lease(ctx, now, lease),
        when_busy=lambda: SyncSummary(already_running=True),
    )


def _sync_holding_lease(ctx: Context, now: datetime, lease: Lease) -> SyncSummary:
    crm = ctx.agreement.config.crm
    try:
        summary = sync(
            ctx.crm,
            ctx.sessions,
            now,
            touch_kinds=tuple(crm.touch_types),
            cursor_prefix=crm.provider,
            overlap=crm.sync_overlap,
            track_archived=crm.track_archived,
            heartbeat=lease.renew,
        )
    except AuthError as e:
        with session_scope(ctx.sessions) as session:
            outbox.set_health(session, "crm", False, f"the CRM rejected the token: {e.code}", now)
        raise
    with session_scope(ctx.sessions) as session:
        outbox.set_health(session, "crm", True, "", now)
    return summary


def sync(
    crm: CrmClient,
    sessions: Callable[[], Session],
    now: datetime,
    *,
    touch_kinds: tuple[str, ...],
    cursor_prefix: str,
    overlap: timedelta,
    track_archived: bool = True,
    heartbeat: Callable[[], None] = lambda: None,
) -> SyncSummary:
    """One incremental pass over owners, leads, archived leads and each touch kind.

    ``heartbeat`` is called after each committed page (the caller renews its lease there)."""
    summary = SyncSummary()
    owners = crm.list_owners()
    with session_scope(sessions) as session:
        mirror.upsert_owners(session, owners, now)
    summary.owners = len(owners)

    def store_leads(session: Session, page: Page[CrmLead]) -> None:
        summary.leads += len(page.items)
        summary.leads_changed += len(mirror.upsert_leads(session, page.items, now))

    _sync_stream(
        f"{cursor_prefix}:leads",
        crm.search_leads_changed_since,
        store_leads,
        sessions,
        now,
        overlap,
        summary,
        heartbeat,
    )
    if track_archived:
        # Search never returns archived records, so their absence tells nothing: ask for them.
        archived = crm.list_archived_lead_ids()
        with session_scope(sessions) as session:
            summary.archived = mirror.mark_archived(session, archived)
    for kind in touch_kinds:

        def store_touches(session: Session, page: Page[CrmTouch]) -> None:
            summary.touches += len(page.items)
            mirror.upsert_touches(session, page.items, now)

        def fetch(start: SearchFrom, kind: str = kind) -> Page[CrmTouch]:
            return crm.search_touches_changed_since(kind, start)

        _sync_stream(
            f"{cursor_prefix}:touches:{kind}",
            fetch,
            store_touches,
            sessions,
            now,
            overlap,
            summary,
            heartbeat,
        )
    return summary


def _sync_stream(
    name: str,
    fetch: Callable[[SearchFrom], Page[T]],
    store: Callable[[Session, Page[T]], None],
    sessions: Callable[[], Session],
    now: datetime,
    overlap: timedelta,
    summary: SyncSummary,
    heartbeat: Callable[[], None],
) -> None:
    """Page through one stream from its cursor, committing each page with the cursor.

    Search indexes lag (a record modified just before the cursor may become searchable only
    after a pass read past it), so a pass re-reads ``overlap`` — but only where it matters: a
    pass that ended at ``now`` has seen every change before ``now - overlap`` ("settled"), and
    the next pass starts there, or strictly after the newest change stored when that is older.
    So after a bulk edit the edited records are read again at most once, and a quiet portal
    costs a quiet sync. A pass ends on a page after which nothing is left (``Page.resume``).
    """
    with session_scope(sessions) as session:
        start = _start_of_pass(
            mirror.cursor_at(session, name), mirror.settled_at(session, name), overlap
        )
    pages = 0
    while True:
        page = fetch(start)
        pages += 1
        summary.pages += 1
        summary.skipped += page.skipped
        with session_scope(sessions) as session:
            store(session, page)
            if page.items:
                newest = max(item.modified_at for item in page.items)
                mirror.advance_cursor(session, name, newest, now)
        heartbeat()
        if page.resume is None:
            with session_scope(sessions) as session:
                mirror.settle_cursor(session, name, now - overlap, now)
            summary.by_stream[name] = pages
            return
        if page.resume == start:
            # Cannot happen with a CRM that honours the filters; never loop forever on one.
            raise PermanentError(f"sync {name}: the search did not move past {start}")
        start = page.resume


def _start_of_pass(
    newest: datetime | None, settled: datetime | None, overlap: timedelta
) -> SearchFrom:
    """Where a pass starts reading (see :func:`_sync_stream`)."""
    if newest is None:
        return SearchFrom(EPOCH)
    if settled is None:  # no pass has ended since this cursor was written
        return SearchFrom(max(EPOCH, newest - overlap))
    if newest < settled:  # every change at or before the newest stored one has been read
        return SearchFrom(newest, strictly_after=True)
    return SearchFrom(settled)
