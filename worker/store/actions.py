"""The audit of what people did from Slack: one ``actions`` row per command or action, with
who asked (Slack user id and e-mail), what, about which lead, and what came of it.

Written once per request, when the answer is known and before it is sent; changed only to note
that the reply did not reach the person. Never deleted here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.store.models import Action

#: Longest ``action`` text kept (the column's size); a user can type anything after ``/sla``.
MAX_ACTION_CHARS = 400


def record_action(
    session: Session,
    *,
    at: datetime,
    slack_user_id: str,
    email: str | None,
    action: str,
    lead_id: str | None,
    outcome: str,
) -> int:
    """Audit one request; the row's id."""
    row = Action(
        at=at,
        slack_user_id=slack_user_id[:64],
        email=email,
        action=action[:MAX_ACTION_CHARS],
        lead_id=lead_id,
        outcome=outcome,
    )
    session.add(row)
    session.flush()
    return row.id


def note_reply_failed(session: Session, action_id: int, reason: str) -> None:
    """The person did not get the answer the row records."""
    row = session.get(Action, action_id)
    if row is not None:
        row.outcome = f"{row.outcome}; reply failed: {reason}"


def of_lead(session: Session, lead_id: str, limit: int = 50) -> list[Action]:
    """The latest ``limit`` actions about a lead, oldest first (for ``explain``)."""
    latest = session.scalars(
        select(Action).where(Action.lead_id == lead_id).order_by(Action.id.desc()).limit(limit)
    ).all()
    return list(reversed(latest))
