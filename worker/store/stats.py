"""Enforcement in numbers, read from the store in a few aggregate queries: leads tracked, open
breaches, the outbox backlog, how far each sync stream has read. The metrics exporter asks at
every scrape. Reads only, and returns plain values: no ORM object leaves this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from worker.sla.model import RuleState
from worker.store.models import Finding, Lead, OutboxRow, Owner, SyncCursor
from worker.store.outbox import Status

#: Notices not yet handed to Slack: waiting for their time, or claimed by a deliver pass.
UNSENT = (Status.PENDING.value, Status.SENDING.value)


@dataclass(frozen=True)
class OpenBreaches:
    """How many rules are breached now under one policy, for one owner's leads."""

    rule: str
    policy: str
    owner_email: str | None
    owner_teams: Sequence[str]
    count: int


@dataclass(frozen=True)
class OutboxBacklog:
    """Notices not yet sent, and the due time of the oldest one that is due (None: none is)."""

    unsent: int
    oldest_due_at: datetime | None


def tracked_leads(session: Session) -> int:
    """Leads the worker judges: every stored lead not archived in the CRM."""
    return session.scalar(select(func.count()).select_from(Lead).where(~Lead.archived)) or 0


def open_breaches(session: Session) -> list[OpenBreaches]:
    """Breached rules of tracked leads, by rule, policy and owner (owners carry the team)."""
    rows = session.execute(
        select(Finding.rule, Finding.policy, Lead.owner_id, func.count())
        .join(Lead, Lead.id == Finding.lead_id)
        .where(Finding.state == RuleState.BREACHED.value, ~Lead.archived)
        .group_by(Finding.rule, Finding.policy, Lead.owner_id)
    ).all()
    owner_ids = {owner_id for _, _, owner_id, _ in rows if owner_id is not None}
    owners = {
        owner.id: owner for owner in session.scalars(select(Owner).where(Owner.id.in_(owner_ids)))
    }
    found: list[OpenBreaches] = []
    for rule, policy, owner_id, count in rows:
        owner = owners.get(owner_id) if owner_id is not None else None
        found.append(
            OpenBreaches(
                rule,
                policy,
                owner.email if owner else None,
                tuple(owner.teams or ()) if owner else (),
                count,
            )
        )
    return found


def outbox_backlog(session: Session, now: datetime) -> OutboxBacklog:
    """Unsent notices; a notice held for working hours or a digest is not due until then."""
    unsent, oldest = session.execute(
        select(
            func.count(),
            func.min(case((OutboxRow.due_at <= now, OutboxRow.due_at))),
        ).where(OutboxRow.status.in_(UNSENT))
    ).one()
    return OutboxBacklog(unsent or 0, oldest)


def sync_read_up_to(session: Session) -> dict[str, datetime]:
    """Per sync stream (``hubspot:leads``, ``hubspot:touches:call``, …): every change before
    this instant is in the store (the settled point of the last whole pass, or the newest change
    stored since)."""
    return {
        cursor.name: max(cursor.modified_at, cursor.settled_at or cursor.modified_at)
        for cursor in session.scalars(select(SyncCursor))
    }
