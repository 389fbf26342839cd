"""Breaches acknowledged from Slack: who acknowledged which breach, and when.

A breach is (lead, rule, breached deadline). The first acknowledgement of a breach is kept and
never changed (a second click finds it and changes nothing); evaluate reads them per batch so
that an acknowledged breach is neither repeated nor escalated further. Nothing is deleted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.store.db import among, chunks, insert_missing
from worker.store.models import Acknowledgement

#: A breach as evaluate and deliver compare it: (rule, breached deadline).
Breach = tuple[str, datetime]


def acknowledge(
    session: Session,
    *,
    lead_id: str,
    rule: str,
    deadline_at: datetime,
    by_email: str,
    by_slack_user_id: str,
    by_name: str,
    at: datetime,
) -> tuple[Acknowledgement, bool]:
    """Record the acknowledgement of one breach unless it has one; the breach's acknowledgement
    (this one or the earlier one) and whether it is this one. One statement, so two people
    clicking at once cannot both acknowledge it."""
    created = insert_missing(
        session,
        Acknowledgement,
        lead_id=lead_id,
        rule=rule,
        deadline_at=deadline_at,
        by_email=by_email[:320],
        by_slack_user_id=by_slack_user_id[:64],
        by_name=by_name[:200],
        at=at,
    )
    found = of_breach(session, lead_id, rule, deadline_at)
    assert found is not None  # inserted above, or there already
    return found, created


def of_breach(
    session: Session, lead_id: str, rule: str, deadline_at: datetime
) -> Acknowledgement | None:
    return session.scalars(
        select(Acknowledgement).where(
            Acknowledgement.lead_id == lead_id,
            Acknowledgement.rule == rule,
            Acknowledgement.deadline_at == deadline_at,
        )
    ).first()


def for_leads(session: Session, lead_ids: Sequence[str]) -> dict[str, set[Breach]]:
    """Lead id → the breaches of it that were acknowledged (one query per 500 leads; only
    leads with one are in the answer)."""
    found: dict[str, set[Breach]] = {}
    for chunk in chunks(lead_ids):
        query = select(
            Acknowledgement.lead_id, Acknowledgement.rule, Acknowledgement.deadline_at
        ).where(among(session, Acknowledgement.lead_id, chunk))
        # Core: no ORM on the way, a pass reads this a batch; fetched at once, not row by row.
        rows = session.connection().execute(query).all()
        for lead_id, rule, deadline_at in rows:
            found.setdefault(lead_id, set()).add((rule, deadline_at))
    return found


def of_lead(session: Session, lead_id: str) -> list[Acknowledgement]:
    """A lead's acknowledgements, oldest first (for ``explain``)."""
    return list(
        session.scalars(
            select(Acknowledgement)
            .where(Acknowledgement.lead_id == lead_id)
            .order_by(Acknowledgement.at, Acknowledgement.id)
        )
    )
