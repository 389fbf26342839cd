"""Queries the evaluate stage and the CLI read: due leads and everything needed to judge them.

Read-mostly; no SLA logic and no external calls. The CRM mirror's writes live in
``worker.store.mirror``, the outbox's in ``worker.store.outbox``.
"""

from __future__ import annotations

from collections import defaultdict, namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, false, select, true, tuple_, update
from sqlalchemy.orm import Session

from worker.names import display_name
from worker.store.db import among, chunks, insert_missing
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

#: A stored row read as plain columns (attribute access by column name), not an ORM entity:
#: a pass reads thousands and changes a few columns of each with one statement. A named tuple
#: (:func:`plain_rows`): reading a column of SQLAlchemy's ``Row`` by name costs ten times an
#: index (0.29 µs against 0.03 µs, measured), and a pass reads some forty columns of each lead
#: it judges by name — a tenth of an incremental pass.
Row = Any


def plain_rows(session: Session, query: Select[*tuple[Any, ...]]) -> list[Row]:
    """``query``'s rows as named tuples, fetched at once (iterating the result fetched them one
    by one: a third of reading a batch)."""
    result = session.connection().execute(query)
    make = _row_class(tuple(result.keys()))._make
    return [make(row) for row in result.all()]


@lru_cache(maxsize=64)
def _row_class(keys: tuple[str, ...]) -> Any:
    return namedtuple("Row", keys)  # its fields are a query's columns


@dataclass
class DueWalk:
    """Where a pass is in its two walks over due leads, each in the order of its own index:
    the dirty ones by id (``ix_leads_dirty_id``), then those whose next check has come by
    (next check, id) (``ix_leads_next_check_at_id``). Each batch starts where the last one
    ended, so a pass visits each due lead once and costs in proportion to what is due, not to
    what is stored; a lead that stays due (it waits for its owner) is not visited again."""

    dirty_after: str | None = None
    dirty_done: bool = False
    check_after: tuple[datetime | None, str] | None = None


def next_due_ids(
    session: Session, now: datetime, limit: int, walk: DueWalk, *, claim: bool = False
) -> list[str]:
    """The next batch of due leads (empty: the pass is done); advances ``walk``. ``claim``:
    lock them until the transaction ends, skipping leads another transaction holds (another
    worker judging them, or sync writing them: either way they are judged by a later walk)."""

    def ids_of(query: Select[*tuple[Any, ...]]) -> list[Any]:
        if claim:
            query = query.with_for_update(skip_locked=True, of=Lead)
        return list(session.connection().execute(query.limit(limit)).all())

    if not walk.dirty_done:
        dirty = select(Lead.id).where(Lead.dirty == true())
        if walk.dirty_after is not None:
            dirty = dirty.where(Lead.id > walk.dirty_after)
        ids = [lead_id for (lead_id,) in ids_of(dirty.order_by(Lead.id))]
        walk.dirty_done = len(ids) < limit
        if ids:
            walk.dirty_after = ids[-1]
            return ids
    due = select(Lead.next_check_at, Lead.id).where(
        Lead.next_check_at <= now, Lead.dirty == false()
    )
    if walk.check_after is not None:
        due = due.where(tuple_(Lead.next_check_at, Lead.id) > tuple_(*walk.check_after))
    rows = ids_of(due.order_by(Lead.next_check_at, Lead.id))
    if rows:
        walk.check_after = (rows[-1][0], rows[-1][1])
    return [lead_id for _, lead_id in rows]


@dataclass(frozen=True)
class LeadBundle:
    """Everything evaluate needs about one lead, read in a few queries per batch."""

    lead: Row
    owner: Row | None
    touches: list[Row]
    status_history: list[Row]

    @property
    def lead_name(self) -> str:
        row = self.lead
        return display_name(row.first_name, row.last_name, row.email, row.id)

    @property
    def owner_name(self) -> str:
        owner = self.owner
        if owner is None:
            return "unassigned"
        return display_name(owner.first_name, owner.last_name, owner.email, owner.id)


def load_bundles(session: Session, lead_ids: Sequence[str]) -> list[LeadBundle]:
    """The leads among ``lead_ids`` with their owners, touches (oldest first) and status
    history, as plain rows: four queries however many leads."""
    # Core statements on the session's connection: plain rows, no ORM on the way.
    leads = plain_rows(session, select(Lead.__table__).where(among(session, Lead.id, lead_ids)))
    owner_ids = list({lead.owner_id for lead in leads if lead.owner_id})
    owners = select(Owner.__table__).where(among(session, Owner.id, owner_ids))
    by_id = {owner.id: owner for owner in plain_rows(session, owners)}
    touches: dict[str, list[Row]] = defaultdict(list)
    for touch in plain_rows(
        session,
        select(TouchLead.lead_id, *Touch.__table__.c)
        .join(Touch, Touch.id == TouchLead.touch_id)
        .where(among(session, TouchLead.lead_id, lead_ids))
        .order_by(Touch.occurred_at),
    ):
        touches[touch.lead_id].append(touch)
    history: dict[str, list[Row]] = defaultdict(list)
    for change in plain_rows(
        session,
        select(LeadStatusChange.lead_id, LeadStatusChange.at, LeadStatusChange.status)
        .where(among(session, LeadStatusChange.lead_id, lead_ids))
        .order_by(LeadStatusChange.at, LeadStatusChange.id),
    ):
        history[change.lead_id].append(change)
    return [
        LeadBundle(
            lead=lead,
            owner=by_id.get(lead.owner_id) if lead.owner_id else None,
            touches=touches[lead.id],
            status_history=history[lead.id],
        )
        for lead in leads
    ]


def findings_for(session: Session, lead_ids: Sequence[str]) -> dict[str, dict[str, Row]]:
    """Lead id → rule → its stored finding (a plain row), a query per 500 leads."""
    found: dict[str, dict[str, Row]] = {lead_id: {} for lead_id in lead_ids}
    for chunk in chunks(lead_ids):
        query = select(Finding.__table__).where(among(session, Finding.lead_id, chunk))
        for finding in plain_rows(session, query):
            found[finding.lead_id][finding.rule] = finding
    return found


def apply_agreement(session: Session, fingerprint: str, now: datetime) -> int:
    """Record that findings are made under the agreement ``fingerprint``. When it differs from
    the one recorded, every tracked lead is marked dirty (one statement, in this transaction),
    so the evaluate pass judges them all again under the new rules; returns how many."""
    # A new store records the agreement (nothing was judged under another); passes that start
    # together on it (workers sharing a pass) must not both insert the row.
    if insert_missing(
        session, AgreementApplied, name="current", fingerprint=fingerprint, applied_at=now
    ):
        return 0
    # Locked: passes that start together mark the leads once.
    row = session.get(AgreementApplied, "current", with_for_update=True)
    assert row is not None  # there already, as the insert found
    if row.fingerprint == fingerprint:
        return 0
    result = session.execute(
        update(Lead).where(Lead.archived.is_(False)).values(**Lead.dirty_values())
    )
    row.fingerprint, row.applied_at = fingerprint, now
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
