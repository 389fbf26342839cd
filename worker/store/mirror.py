"""The CRM mirror in the store: sync cursors and idempotent upserts of owners, leads, touches.

Every write is an upsert keyed by the CRM's id that never lets an older copy overwrite a newer
one, so sync can re-read an overlap, retry a page or run twice at once without harm. No SLA
logic and no external calls.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from worker.crm.records import CrmLead, CrmOwner, CrmTouch
from worker.store.models import (
    Lead,
    LeadStatusChange,
    Owner,
    SyncCursor,
    Touch,
    TouchLead,
)

# -- sync cursors ---------------------------------------------------------------------------


def cursor_at(session: Session, name: str) -> datetime | None:
    row = session.get(SyncCursor, name)
    return row.modified_at if row else None


def advance_cursor(session: Session, name: str, modified_at: datetime, now: datetime) -> None:
    """Move the cursor forward only: an overlapping older run can never move it back."""
    row = session.get(SyncCursor, name)
    if row is None:
        session.add(SyncCursor(name=name, modified_at=modified_at, updated_at=now))
    elif modified_at > row.modified_at:
        row.modified_at = modified_at
        row.updated_at = now


# -- CRM mirror -----------------------------------------------------------------------------


def upsert_owner(session: Session, owner: CrmOwner, now: datetime) -> None:
    row = session.get(Owner, owner.id)
    if row is None:
        row = Owner(id=owner.id, synced_at=now)
        session.add(row)
    row.email = owner.email
    row.first_name = owner.first_name
    row.last_name = owner.last_name
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
    """Store the CRM's view of a lead; True when anything changed (the lead is then dirty).

    A status change is appended to the lead's status history at the CRM's modified time, the
    closest instant the CRM gives us, so pauses and returns can be judged later.
    """
    row = session.get(Lead, lead.id)
    if row is not None and row.modified_at > lead.modified_at:
        return False  # an older copy (search index lag, overlapping runs): keep the newer one
    if row is None:
        row = Lead(id=lead.id, synced_at=now, dirty=True, properties={})
        session.add(row)
        changed = True
        old_status: str | None = None
        is_new = True
    else:
        changed = any(getattr(row, f) != getattr(lead, f) for f in _LEAD_FIELDS)
        old_status = row.status
        is_new = False
    for field in _LEAD_FIELDS:
        setattr(row, field, getattr(lead, field))
    row.properties = dict(lead.properties)
    row.synced_at = now
    if is_new or old_status != lead.status:
        session.add(LeadStatusChange(lead_id=lead.id, at=lead.modified_at, status=lead.status))
    if changed:
        row.dirty = True
    return changed


def upsert_touch(session: Session, touch: CrmTouch, now: datetime) -> set[str]:
    """Store a touch and its leads; returns the ids of leads whose SLA may have changed."""
    key = f"{touch.kind}:{touch.id}"
    row = session.get(Touch, key)
    if row is not None and row.modified_at > touch.modified_at:
        return set()
    if row is None:
        row = Touch(id=key, kind=touch.kind, synced_at=now)
        session.add(row)
    row.occurred_at = touch.occurred_at
    row.modified_at = touch.modified_at
    row.owner_id = touch.owner_id
    row.duration_ms = int(touch.duration / timedelta(milliseconds=1))
    row.direction = touch.direction
    row.status = touch.status
    row.synced_at = now
    session.flush()
    previous = set(
        session.scalars(select(TouchLead.lead_id).where(TouchLead.touch_id == key)).all()
    )
    current = set(touch.lead_ids)
    for lead_id in current - previous:
        session.add(TouchLead(touch_id=key, lead_id=lead_id))
    if previous - current:
        session.execute(
            delete(TouchLead).where(
                TouchLead.touch_id == key, TouchLead.lead_id.in_(previous - current)
            )
        )
    affected = current | previous
    if affected:
        session.execute(update(Lead).where(Lead.id.in_(affected)).values(dirty=True))
    return affected
