"""Rep reminders snoozed from Slack: which breach or warning, until when, by whom.

A breach is (lead, rule, deadline), as the outbox's dedup keys start. One snooze per breach: a
later click replaces it (one statement, so two clicks at once leave one of them). Evaluate reads
them per batch so that no level-0 reminder of a snoozed breach that falls due before its
``until`` is written. Nothing is deleted here: an ended snooze stays for ``explain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.store.db import among, chunks
from worker.store.models import Snooze

#: A breach as evaluate compares it: (rule, deadline).
Breach = tuple[str, datetime]


def snooze(
    session: Session,
    *,
    lead_id: str,
    rule: str,
    deadline_at: datetime,
    until: datetime,
    by_email: str,
    by_name: str,
    at: datetime,
) -> Snooze:
    """Record (or replace) the snooze of one breach; the snooze as stored."""
    dialect = session.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"until": until, "by_email": by_email[:320], "by_name": by_name[:200], "at": at}
    statement = (
        insert_fn(Snooze)
        .values(lead_id=lead_id, rule=rule, deadline_at=deadline_at, **values)
        .on_conflict_do_update(index_elements=["lead_id", "rule", "deadline_at"], set_=values)
    )
    session.execute(statement)
    found = session.scalars(
        select(Snooze)
        .where(Snooze.lead_id == lead_id, Snooze.rule == rule, Snooze.deadline_at == deadline_at)
        .execution_options(populate_existing=True)
    ).one()
    return found


def for_leads(session: Session, lead_ids: Sequence[str]) -> dict[str, dict[Breach, datetime]]:
    """Lead id → its snoozed breaches → until when (one query per 500 leads; only leads with
    a snooze are in the answer). Ended snoozes too: a repeat that fell due inside one stays
    held back when evaluate first sees it after the end (the returned reminder stands for it)."""
    found: dict[str, dict[Breach, datetime]] = {}
    for chunk in chunks(lead_ids):
        query = select(Snooze.lead_id, Snooze.rule, Snooze.deadline_at, Snooze.until).where(
            among(session, Snooze.lead_id, chunk)
        )
        # Core: no ORM on the way, a pass reads this a batch; fetched at once, not row by row.
        rows = session.connection().execute(query).all()
        for lead_id, rule, deadline_at, until in rows:
            found.setdefault(lead_id, {})[(rule, deadline_at)] = until
    return found


def of_lead(session: Session, lead_id: str) -> list[Snooze]:
    """A lead's snoozes, oldest first (for ``explain``)."""
    return list(
        session.scalars(select(Snooze).where(Snooze.lead_id == lead_id).order_by(Snooze.at))
    )
