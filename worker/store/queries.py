"""The queries the stages share: upserts from sync, due leads for evaluate, outbox claims.

Every write here is idempotent (an upsert, an insert that ignores a known dedup key, a
conditional update whose row count says who won), so a stage can be re-run or run twice at
once without harm. No SLA logic and no external calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.crm.records import CrmLead, CrmOwner, CrmTouch
from worker.store.models import (
    Finding,
    Lead,
    LeadStatusChange,
    OutboxMessage,
    Owner,
    SlackUserCache,
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


# -- evaluate -------------------------------------------------------------------------------


def due_lead_ids(session: Session, now: datetime, limit: int) -> list[str]:
    """Leads that changed, or whose next deadline has come: never the whole table."""
    query = (
        select(Lead.id)
        .where(or_(Lead.dirty.is_(True), Lead.next_check_at <= now))
        .order_by(Lead.id)
        .limit(limit)
    )
    return list(session.scalars(query).all())


@dataclass(frozen=True)
class LeadBundle:
    """Everything evaluate needs about one lead, read in a few queries per batch."""

    lead: Lead
    owner: Owner | None
    touches: list[Touch]
    status_history: list[LeadStatusChange]


def load_bundles(session: Session, lead_ids: Sequence[str]) -> list[LeadBundle]:
    leads = session.scalars(select(Lead).where(Lead.id.in_(lead_ids))).all()
    owner_ids = {lead.owner_id for lead in leads if lead.owner_id}
    owners = {o.id: o for o in session.scalars(select(Owner).where(Owner.id.in_(owner_ids))).all()}
    touches: dict[str, list[Touch]] = defaultdict(list)
    rows = session.execute(
        select(TouchLead.lead_id, Touch)
        .join(Touch, Touch.id == TouchLead.touch_id)
        .where(TouchLead.lead_id.in_(lead_ids))
        .order_by(Touch.occurred_at)
    ).all()
    for lead_id, touch in rows:
        touches[lead_id].append(touch)
    history: dict[str, list[LeadStatusChange]] = defaultdict(list)
    for change in session.scalars(
        select(LeadStatusChange)
        .where(LeadStatusChange.lead_id.in_(lead_ids))
        .order_by(LeadStatusChange.at, LeadStatusChange.id)
    ).all():
        history[change.lead_id].append(change)
    return [
        LeadBundle(
            lead=lead,
            owner=owners.get(lead.owner_id) if lead.owner_id else None,
            touches=touches[lead.id],
            status_history=history[lead.id],
        )
        for lead in leads
    ]


def findings_for(session: Session, lead_id: str) -> dict[str, Finding]:
    return {
        f.rule: f for f in session.scalars(select(Finding).where(Finding.lead_id == lead_id)).all()
    }


def insert_outbox(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Insert notifications, ignoring any whose dedup key is already there; returns how many
    were new. Works the same on PostgreSQL and SQLite (both have ON CONFLICT DO NOTHING)."""
    values = list(rows)
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    inserted = 0
    for value in values:
        stmt = insert_fn(OutboxMessage).values(**value)
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(OutboxMessage.id)
        inserted += len(session.execute(stmt).all())
    return inserted


# -- deliver --------------------------------------------------------------------------------


def recipients_due(session: Session, now: datetime) -> list[str]:
    """Recipients with at least one notification due now (or whose sender's lease ran out)."""
    query = (
        select(OutboxMessage.recipient)
        .where(
            or_(
                (OutboxMessage.status == "pending") & (OutboxMessage.due_at <= now),
                (OutboxMessage.status == "sending") & (OutboxMessage.leased_until < now),
            )
        )
        .group_by(OutboxMessage.recipient)
        .order_by(func.min(OutboxMessage.due_at))
    )
    return list(session.scalars(query).all())


def claim_rows(
    session: Session,
    recipient: str,
    now: datetime,
    lease_for: timedelta,
    group_wait: timedelta = timedelta(0),
) -> list[OutboxMessage]:
    """Lease every sendable row of one recipient; a row another sender holds is skipped.

    Rows falling due within ``group_wait`` ride along, so they go out in the same message.
    The claim is a conditional UPDATE per row whose row count must be 1 (as healthchecks
    does): two deliver runs racing for the same row cannot both win it.
    """
    candidates = session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.recipient == recipient,
            or_(
                (OutboxMessage.status == "pending") & (OutboxMessage.due_at <= now + group_wait),
                (OutboxMessage.status == "sending") & (OutboxMessage.leased_until < now),
            ),
        )
    ).all()
    claimed: list[int] = []
    for row_id in candidates:
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row_id,
                or_(
                    OutboxMessage.status == "pending",
                    (OutboxMessage.status == "sending") & (OutboxMessage.leased_until < now),
                ),
            )
            .values(
                status="sending",
                leased_until=now + lease_for,
                attempts=OutboxMessage.attempts + 1,
            )
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(row_id)
    session.commit()
    if not claimed:
        return []
    return list(
        session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(claimed)).order_by(OutboxMessage.id)
        ).all()
    )


def cached_slack_user(
    session: Session, email: str, now: datetime, ttl: timedelta
) -> SlackUserCache | None:
    row = session.get(SlackUserCache, email.lower())
    if row is None or row.looked_up_at + ttl < now:
        return None
    return row


def remember_slack_user(
    session: Session, email: str, user_id: str | None, tz: str | None, now: datetime
) -> None:
    key = email.lower()
    row = session.get(SlackUserCache, key)
    if row is None:
        session.add(SlackUserCache(email=key, user_id=user_id, tz=tz, looked_up_at=now))
    else:
        row.user_id = user_id
        row.tz = tz
        row.looked_up_at = now


def pending_rows(session: Session, recipient: str, due_by: datetime) -> list[OutboxMessage]:
    """Pending rows of one recipient due by ``due_by``, without leasing them (dry runs)."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.recipient == recipient,
                OutboxMessage.status == "pending",
                OutboxMessage.due_at <= due_by,
            )
            .order_by(OutboxMessage.id)
        ).all()
    )
