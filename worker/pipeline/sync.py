"""Sync: pull owners, leads and touches changed since the stored cursors into the store.

Each stream is read by keyset paging (every page a new search that starts at the last record
stored), so the search's 10,000-result cap is never reached and records modified while we page
are read again later instead of being skipped. The cursor moves only with the data it covers, in
the same transaction, page by page: a crash or an error mid-run never skips a record, and
re-reading the overlap is harmless (upserts keep the newest copy). The next page is requested
while the current one is stored (its start is known from the current page's answer alone), so
network latency does not leave the search budget idle. It never judges a lead; it only marks
changed leads dirty for evaluate, and archived or merged leads as no longer tracked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from worker.crm.client import CrmClient
from worker.crm.records import CrmLead, CrmTouch, Page, SearchFrom
from worker.errors import AuthError, PermanentError
from worker.pipeline.context import Context
from worker.pipeline.summary import DETAIL, Summary
from worker.store import mirror, outbox, planner_stats
from worker.store.db import session_scope
from worker.store.leases import Lease, alone

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T", CrmLead, CrmTouch)

#: Pages of a stream requested ahead of the one being stored. One would do while storing a
#: page is quicker than reading one; a few more keep the search going over a slow commit and
#: while a batch of touches has its leads read (see ``_sync_stream``). What is read ahead and
#: not stored when a pass stops is read again by the next one.
READ_AHEAD_PAGES = 4


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
    client = ctx.crm
    try:
        summary = sync(
            client,
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
    finally:
        # Also after a failed pass: a spent quota fails every request, and says so here.
        with contextlib.suppress(SQLAlchemyError):
            _record_daily_use(ctx.sessions, client, now)
    with session_scope(ctx.sessions) as session:
        outbox.set_health(session, "crm", True, "", now)
    return summary


def _record_daily_use(sessions: Callable[[], Session], crm: CrmClient, now: datetime) -> None:
    """How much of the CRM's daily request quota is spent, for ``health`` ("crm quota")."""
    use = crm.daily_use()
    if use is not None:
        with session_scope(sessions) as session:
            outbox.set_health(session, "crm quota", not use.warning, use.describe(), now)


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
    executor: Executor | None = None,
) -> SyncSummary:
    """One incremental pass over owners, leads, archived leads and each touch kind.

    ``heartbeat`` is called after each committed page (the caller renews its lease there).
    ``executor`` reads the pages ahead; by default one thread of this pass's own, which has
    stopped when this returns (benchmarks give one that runs on their virtual clock)."""
    if executor is None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-read-ahead") as own:
            return sync(
                crm,
                sessions,
                now,
                touch_kinds=touch_kinds,
                cursor_prefix=cursor_prefix,
                overlap=overlap,
                track_archived=track_archived,
                heartbeat=heartbeat,
                executor=own,
            )
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
        executor,
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
            return crm.search_touches_changed_since(kind, start, with_leads=False)

        _sync_stream(
            f"{cursor_prefix}:touches:{kind}",
            fetch,
            store_touches,
            sessions,
            now,
            overlap,
            summary,
            heartbeat,
            executor,
            complete=lambda pages: _with_leads(crm, pages),
            complete_per=crm.touches_per_lead_read,
        )
    return summary


def _with_leads(crm: CrmClient, pages: list[Page[CrmTouch]]) -> list[Page[CrmTouch]]:
    """The pages' touches with their leads, read for all the pages at once."""
    touches = iter(crm.touches_with_leads([touch for page in pages for touch in page.items]))
    return [replace(page, items=[next(touches) for _ in page.items]) for page in pages]


def _sync_stream(
    name: str,
    fetch: Callable[[SearchFrom], Page[T]],
    store: Callable[[Session, Page[T]], None],
    sessions: Callable[[], Session],
    now: datetime,
    overlap: timedelta,
    summary: SyncSummary,
    heartbeat: Callable[[], None],
    executor: Executor,
    *,
    complete: Callable[[list[Page[T]]], list[Page[T]]] | None = None,
    complete_per: int = 1,
) -> None:
    """Page through one stream from its cursor, committing each page with the cursor.

    Search indexes lag (a record modified just before the cursor may become searchable only
    after a pass read past it), so a pass re-reads ``overlap`` — but only where it matters: a
    pass that ended at ``now`` has seen every change before ``now - overlap`` ("settled"), and
    the next pass starts there, or strictly after the newest change stored when that is older.
    So after a bulk edit the edited records are read again at most once, and a quiet portal
    costs a quiet sync. A pass ends on a page after which nothing is left (``Page.resume``).

    Pages are read ahead (:class:`_ReadAhead`) and stored in order. ``complete`` finishes
    pages before they are stored (touches: their leads), for as many pages at once as hold
    ``complete_per`` records, so one request covers several pages. An error reading a page is
    raised where that page would be taken: every page of the batches before it is stored, and
    what is not stored is read again by the next pass.
    """
    with session_scope(sessions) as session:
        start = _start_of_pass(
            mirror.cursor_at(session, name), mirror.settled_at(session, name), overlap
        )
    pages = 0
    with _ReadAhead(fetch, start, executor, READ_AHEAD_PAGES) as reader:
        while True:
            batch = [reader.next()]
            while (
                complete is not None
                and _goes_on(*batch[-1])
                and sum(len(page.items) for _, page in batch) < complete_per
            ):
                batch.append(reader.next())
            if complete is not None:
                done = complete([page for _, page in batch])
                batch = [(at, page) for (at, _), page in zip(batch, done, strict=True)]
            for page_start, page in batch:
                if pages % STATISTICS_EVERY == 0:
                    planner_stats.refresh(sessions)
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
                if page.resume == page_start:
                    # Cannot happen with a CRM that honours the filters; never loop forever.
                    raise PermanentError(f"sync {name}: the search did not move past {page_start}")


#: Pages between looks at the store's planner statistics (``planner_stats``): a first sync fills
#: the mirror from nothing, and looks up each page's records by id in it.
STATISTICS_EVERY = 25


def _goes_on(start: SearchFrom, page: Page[T]) -> bool:
    """Whether another page follows ``page``, which was read from ``start``."""
    return page.resume is not None and page.resume != start


class _ReadAhead(Generic[T]):
    """The pages of one stream, in order, each requested as soon as the answer for the one
    before says where it starts — before that one is stored — at most ``ahead`` pages ahead
    of the caller, on ``executor`` (one request at a time: keyset pages form a chain).

    :meth:`next` returns (where the page was read from, the page) and raises that page's error
    if reading it failed; the chain stops there. Leaving the ``with`` block cancels what was
    not yet asked and waits for a request in flight, so none is sent once the pass is over.
    The rate limiter and the daily quota are shared with the caller's thread and locked.
    """

    def __init__(
        self,
        fetch: Callable[[SearchFrom], Page[T]],
        start: SearchFrom,
        executor: Executor,
        ahead: int,
    ) -> None:
        self._fetch: Callable[[SearchFrom], Page[T]] = fetch
        self._executor = executor
        self._ahead = max(1, ahead)
        self._lock = threading.Lock()
        self._requested: deque[Future[tuple[SearchFrom, Page[T]]]] = deque()
        self._parked: SearchFrom | None = None  # the next start, held back: far enough ahead
        self._closed = False
        with self._lock:
            self._request(start)

    def __enter__(self) -> _ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
            requested, self._parked = list(self._requested), None
            self._requested.clear()
        for future in requested:
            if not future.cancel():
                # A page nobody will store: its error changes nothing.
                with contextlib.suppress(Exception):
                    future.result()

    def next(self) -> tuple[SearchFrom, Page[T]]:
        with self._lock:
            future = self._requested.popleft()
        read = future.result()
        with self._lock:
            if self._parked is not None:
                self._request(self._parked)
                self._parked = None
        return read

    def _request(self, start: SearchFrom) -> None:
        # Under self._lock.
        self._requested.append(self._executor.submit(self._read, start))

    def _read(self, start: SearchFrom) -> tuple[SearchFrom, Page[T]]:
        page = self._fetch(start)  # an error ends the chain here; next() raises it
        following = page.resume
        with self._lock:
            if following is not None and following != start and not self._closed:
                if len(self._requested) < self._ahead:
                    self._request(following)
                else:
                    self._parked = following
        return start, page


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
