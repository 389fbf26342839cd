"""The CRM mirror in the store: sync cursors and idempotent upserts of owners, leads, touches.

Every write is an upsert keyed by the CRM's id that never lets an older copy overwrite a newer
one, so sync can re-read an overlap, retry a page or run twice at once without harm. Writes are
per page: one SELECT of the page's existing rows, then batched inserts and updates, never one
round trip per record. No SLA logic and no external calls.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, String, delete, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Session

from worker.crm.records import CrmLead, CrmOwner, CrmTouch
from worker.store.db import chunks, plan_each_query
from worker.store.models import (
    Lead,
    LeadStatusChange,
    Owner,
    SyncCursor,
    Touch,
    TouchLead,
)

log = logging.getLogger(__name__)

# -- values the CRM allows longer than our columns --------------------------------------------


def _column_length(model: type[DeclarativeBase], name: str) -> int | None:
    column_type = model.__table__.c[name].type
    return column_type.length if isinstance(column_type, String) else None


def _fit(model: type[DeclarativeBase], name: str, value: Any, record_id: str) -> Any:
    """``value`` cut to its column's length, with a warning: HubSpot allows far longer text
    than a name or a phone needs, and one value PostgreSQL refused would abort its whole page,
    page after page (StringDataRightTruncation). SQLite does not check lengths; we cut alike."""
    length = _column_length(model, name)
    if not isinstance(value, str) or length is None or len(value) <= length:
        return value
    log.warning(
        "%s %s: %s is %d characters, stored cut to %d",
        model.__tablename__,
        record_id,
        name,
        len(value),
        length,
    )
    return value[:length]


def _fits_key(model: type[DeclarativeBase], name: str, value: str, what: str) -> bool:
    """An id longer than its key column cannot be cut (two records could become one): the
    record is skipped, with an error in the log, and the rest of the page goes on."""
    length = _column_length(model, name)
    if length is None or len(value) <= length:
        return True
    log.error(
        "%s id %r… is %d characters (at most %d): skipped", what, value[:40], len(value), length
    )
    return False


# -- sync cursors ---------------------------------------------------------------------------


def cursor_at(session: Session, name: str) -> datetime | None:
    row = session.get(SyncCursor, name)
    return row.modified_at if row else None


def settled_at(session: Session, name: str) -> datetime | None:
    row = session.get(SyncCursor, name)
    return row.settled_at if row else None


def settle_cursor(session: Session, name: str, settled: datetime, now: datetime) -> None:
    """Every change before ``settled`` has been read; forward only."""
    row = session.get(SyncCursor, name)
    if row is not None and (row.settled_at is None or settled > row.settled_at):
        row.settled_at = settled
        row.updated_at = now


def advance_cursor(session: Session, name: str, modified_at: datetime, now: datetime) -> None:
    """Move the cursor forward only: an overlapping older run can never move it back."""
    row = session.get(SyncCursor, name)
    if row is None:
        session.add(SyncCursor(name=name, modified_at=modified_at, updated_at=now))
    elif modified_at > row.modified_at:
        row.modified_at = modified_at
        row.updated_at = now


# -- CRM mirror -----------------------------------------------------------------------------

_R = TypeVar("_R", CrmLead, CrmTouch)


def upsert_owner(session: Session, owner: CrmOwner, now: datetime) -> None:
    upsert_owners(session, [owner], now)


def upsert_owners(session: Session, owners: Sequence[CrmOwner], now: datetime) -> None:
    owners = [o for o in owners if _fits_key(Owner, "id", o.id, "owner")]
    ids = [o.id for o in owners]
    rows = {r.id: r for chunk in chunks(ids) for r in session.scalars(_owners_in(chunk))}
    for owner in owners:
        row = rows.get(owner.id)
        if row is None:
            row = rows[owner.id] = Owner(id=owner.id, synced_at=now)
            session.add(row)
        row.email = _fit(Owner, "email", owner.email, owner.id)
        row.first_name = _fit(Owner, "first_name", owner.first_name, owner.id)
        row.last_name = _fit(Owner, "last_name", owner.last_name, owner.id)
        row.archived = owner.archived
        row.teams = list(owner.teams)
        row.synced_at = now


_LEAD_FIELDS = (
    "created_at",
    "modified_at",
    "owner_id",
    "owner_assigned_at",
    "first_name",
    "last_name",
    "company",
    "email",
    "phone",
    "lifecycle_stage",
    "status",
    "source",
    "priority",
    "score",
    "archived",
)


def upsert_lead(session: Session, lead: CrmLead, now: datetime) -> bool:
    """Store the CRM's view of one lead; True when anything changed (see :func:`upsert_leads`)."""
    return lead.id in upsert_leads(session, [lead], now)


def upsert_leads(session: Session, leads: Sequence[CrmLead], now: datetime) -> set[str]:
    """Store the CRM's view of a page of leads; returns the ids that changed (now dirty).

    A stored copy newer than the one given is kept (search index lag, overlapping runs). A
    status change is appended to the lead's status history at the CRM's modified time, the
    closest instant the CRM gives us, so pauses and returns can be judged later. Leads merged
    into one of these stop being tracked (archived).
    """
    plan_each_query(session)
    fitting = (lead for lead in leads if _fits_key(Lead, "id", lead.id, "lead"))
    newest = _newest_by_id(fitting, lambda lead: lead.id)
    rows = {r.id: r for chunk in chunks(list(newest)) for r in session.scalars(_leads_in(chunk))}
    history_of = _stored_histories(
        session, [lead.id for lead in newest.values() if lead.status_history is not None]
    )
    exact: list[CrmLead] = []
    changed: set[str] = set()
    for lead in newest.values():
        row = rows.get(lead.id)
        if row is not None and row.modified_at > lead.modified_at:
            continue
        values = {name: _fit(Lead, name, getattr(lead, name), lead.id) for name in _LEAD_FIELDS}
        if row is None:
            row = Lead(id=lead.id, synced_at=now, dirty=True, properties={})
            session.add(row)
            old_status: str | None = None
            differs = is_new = True
        else:
            differs = any(getattr(row, name) != value for name, value in values.items())
            old_status, is_new = row.status, False
        for name, value in values.items():
            setattr(row, name, value)
        if row.owner_id is None:
            row.first_assigned_at = None  # back to marketing: a later owner starts afresh
        elif row.first_assigned_at is None:
            row.first_assigned_at = row.owner_assigned_at or row.created_at
        row.properties = dict(lead.properties)
        row.synced_at = now
        if lead.status_history is not None:
            # The CRM's own record of every status and when: exact pauses, even one paused
            # and resumed between two syncs. It replaces what earlier syncs observed.
            exact.append(lead)
            differs = differs or _history_differs(history_of.get(lead.id), lead)
        elif is_new or old_status != row.status:
            session.add(LeadStatusChange(lead_id=lead.id, at=lead.modified_at, status=row.status))
        if differs:
            row.mark_dirty()
            changed.add(lead.id)
    _replace_histories(session, exact)
    merged = {m for lead in newest.values() for m in lead.merged_ids} - set(newest)
    if merged:
        mark_archived(session, merged)
    return changed


_History = list[tuple[datetime, str | None]]


def _stored_histories(session: Session, lead_ids: Sequence[str]) -> dict[str, _History]:
    stored: dict[str, _History] = {}
    for chunk in chunks(lead_ids):
        changes = session.execute(
            select(LeadStatusChange.lead_id, LeadStatusChange.at, LeadStatusChange.status)
            .where(LeadStatusChange.lead_id.in_(chunk))
            .order_by(LeadStatusChange.lead_id, LeadStatusChange.at, LeadStatusChange.id)
        )
        for lead_id, at, status in changes:
            stored.setdefault(lead_id, []).append((at, status))
    return stored


def _history_differs(stored: _History | None, lead: CrmLead) -> bool:
    """Whether the CRM's history tells something the store does not have yet (the lead must
    then be judged again, although its current status is the same: a pause came and went)."""
    assert lead.status_history is not None
    return [(at, status) for at, status in lead.status_history] != (stored or [])


def _replace_histories(session: Session, leads: Sequence[CrmLead]) -> None:
    if not leads:
        return
    for chunk in chunks([lead.id for lead in leads]):
        session.execute(delete(LeadStatusChange).where(LeadStatusChange.lead_id.in_(chunk)))
    session.add_all(
        LeadStatusChange(
            lead_id=lead.id, at=at, status=_fit(LeadStatusChange, "status", status, lead.id)
        )
        for lead in leads
        for at, status in lead.status_history or ()
    )


def mark_archived(session: Session, lead_ids: Iterable[str]) -> int:
    """Stop tracking leads the CRM archived or merged away; returns how many were tracked.

    They become dirty once more so that evaluate resolves what it had open for them.
    """
    count = 0
    for chunk in chunks(sorted(set(lead_ids))):
        result = session.execute(
            update(Lead)
            .where(Lead.id.in_(chunk), Lead.archived.is_(False))
            .values(archived=True, **Lead.dirty_values())
            .execution_options(synchronize_session="fetch")
        )
        count += int(getattr(result, "rowcount", 0) or 0)
    return count


def upsert_touch(session: Session, touch: CrmTouch, now: datetime) -> set[str]:
    """Store one touch and its leads; see :func:`upsert_touches`."""
    return upsert_touches(session, [touch], now)


def upsert_touches(session: Session, touches: Sequence[CrmTouch], now: datetime) -> set[str]:
    """Store a page of touches and their leads; returns the ids of leads whose SLA may have
    changed (marked dirty): leads of new or changed touches, and leads a touch left."""
    plan_each_query(session)
    fitting = (t for t in touches if _fits_key(Touch, "id", _touch_key(t), "touch"))
    newest = _newest_by_id(fitting, _touch_key)
    keys = list(newest)
    rows = {r.id: r for chunk in chunks(keys) for r in session.scalars(_touches_in(chunk))}
    links: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks(keys):
        query = select(TouchLead.touch_id, TouchLead.lead_id).where(TouchLead.touch_id.in_(chunk))
        for touch_id, lead_id in session.execute(query):
            links[touch_id].add(lead_id)
    affected: set[str] = set()
    added: list[dict[str, str]] = []
    removed: dict[str, set[str]] = {}
    for key, touch in newest.items():
        row = rows.get(key)
        if row is not None and row.modified_at > touch.modified_at:
            continue
        values = {
            "occurred_at": touch.occurred_at,
            "modified_at": touch.modified_at,
            "owner_id": touch.owner_id,
            "duration_ms": int(touch.duration / timedelta(milliseconds=1)),
            "direction": _fit(Touch, "direction", touch.direction, key),
            "status": _fit(Touch, "status", touch.status, key),
        }
        if row is None:
            row = Touch(id=key, kind=touch.kind, synced_at=now)
            session.add(row)
            differs = True
        else:
            differs = any(getattr(row, name) != value for name, value in values.items())
        for name, value in values.items():
            setattr(row, name, value)
        row.synced_at = now
        previous = links.get(key, set())
        current = {i for i in touch.lead_ids if _fits_key(TouchLead, "lead_id", i, "lead")}
        added += [{"touch_id": key, "lead_id": lead_id} for lead_id in sorted(current - previous)]
        if previous - current:
            removed[key] = previous - current
        if differs:
            affected |= current
        affected |= current ^ previous
    session.flush()  # the touches exist before their links
    if added:
        session.execute(insert(TouchLead), added)
    for key, lead_ids in removed.items():
        session.execute(
            delete(TouchLead).where(TouchLead.touch_id == key, TouchLead.lead_id.in_(lead_ids))
        )
    for chunk in chunks(sorted(affected)):
        session.execute(
            update(Lead)
            .where(Lead.id.in_(chunk))
            .values(**Lead.dirty_values())
            .execution_options(synchronize_session="fetch")
        )
    return affected


def _touch_key(touch: CrmTouch) -> str:
    # CRM ids are only unique per activity type.
    return f"{touch.kind}:{touch.id}"


def _newest_by_id(records: Iterable[_R], key: Callable[[_R], str]) -> dict[str, _R]:
    """One record per id, the newest copy (a page may repeat a record that changed)."""
    newest: dict[str, _R] = {}
    for record in records:
        kept = newest.get(key(record))
        if kept is None or record.modified_at >= kept.modified_at:
            newest[key(record)] = record
    return newest


def _owners_in(ids: Sequence[str]) -> Select[Owner]:
    return select(Owner).where(Owner.id.in_(ids))


def _leads_in(ids: Sequence[str]) -> Select[Lead]:
    return select(Lead).where(Lead.id.in_(ids))


def _touches_in(ids: Sequence[str]) -> Select[Touch]:
    return select(Touch).where(Touch.id.in_(ids))
