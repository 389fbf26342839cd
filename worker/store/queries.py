"""Queries the evaluate stage and the CLI read: due leads and everything needed to judge them.

Read-mostly; no SLA logic and no external calls. The CRM mirror's writes live in
``worker.store.mirror``, the outbox's in ``worker.store.outbox``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from worker.store.models import (
    AgreementApplied,
    Finding,
    Lead,
    LeadStatusChange,
    Owner,
    Touch,
    TouchLead,
)

# -- evaluate -------------------------------------------------------------------------------


def due_lead_ids(
    session: Session, now: datetime, limit: int, after: str | None = None
) -> list[str]:
    """Leads that changed, or whose next deadline has come: never the whole table. Keyset by
    id (``after``: the last id of the previous batch), so one pass visits each lead once,
    even one that stays due (it waits for its owner), and never rescans from the start."""
    query = select(Lead.id).where(or_(Lead.dirty.is_(True), Lead.next_check_at <= now))
    if after is not None:
        query = query.where(Lead.id > after)
    return list(session.scalars(query.order_by(Lead.id).limit(limit)).all())


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


#: Rows per IN (...) list: far below SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


def chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


def findings_for(session: Session, lead_ids: Sequence[str]) -> dict[str, dict[str, Finding]]:
    """Lead id → rule → its stored finding, a query per 500 leads."""
    found: dict[str, dict[str, Finding]] = {lead_id: {} for lead_id in lead_ids}
    for chunk in chunks(lead_ids):
        for finding in session.scalars(select(Finding).where(Finding.lead_id.in_(chunk))):
            found[finding.lead_id][finding.rule] = finding
    return found


def apply_agreement(session: Session, fingerprint: str, now: datetime) -> int:
    """Record that findings are made under the agreement ``fingerprint``. When it differs from
    the one recorded, every tracked lead is marked dirty (one statement, in this transaction),
    so the evaluate pass judges them all again under the new rules; returns how many."""
    row = session.get(AgreementApplied, "current")
    if row is not None and row.fingerprint == fingerprint:
        return 0
    marked = 0
    if row is not None:
        result = session.execute(update(Lead).where(Lead.archived.is_(False)).values(dirty=True))
        marked = int(result.rowcount or 0)  # type: ignore[attr-defined]
        row.fingerprint, row.applied_at = fingerprint, now
    else:
        session.add(AgreementApplied(name="current", fingerprint=fingerprint, applied_at=now))
    return marked
