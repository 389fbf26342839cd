"""The outbox in the store: inserting deduplicated notifications, leasing them for sending,
and the Slack user cache.

Inserts ignore a known dedup key; claims are conditional updates whose row count says who
won, so two senders never hold the same row. No rendering and no Slack calls here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from worker.store.models import (
    Finding,
    HealthCheck,
    OutboxMessage,
    SlackThread,
    SlackUserCache,
)


def insert_outbox(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Insert notifications, ignoring any whose dedup key is already there; returns how many
    were new. Works the same on PostgreSQL and SQLite (both have ON CONFLICT DO NOTHING)."""
    values = list(rows)
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # One statement for the lot (SQLAlchemy's "insertmanyvalues" batches it); a row whose key is
    # already there returns nothing, so the returned ids are the new rows.
    stmt = (
        insert_fn(OutboxMessage)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(OutboxMessage.id)
    )
    return len(session.execute(stmt, values).all())


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
    The claim is one conditional UPDATE … RETURNING (PostgreSQL and SQLite ≥ 3.35): each row
    is taken only if it is still sendable when the update reaches it, as healthchecks does
    row by row, so two deliver runs racing for the same row cannot both win it.
    """
    sendable = or_(
        (OutboxMessage.status == "pending") & (OutboxMessage.due_at <= now + group_wait),
        (OutboxMessage.status == "sending") & (OutboxMessage.leased_until < now),
    )
    claimed = session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.recipient == recipient, sendable)
        .values(
            status="sending",
            leased_until=now + lease_for,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(OutboxMessage.id)
    ).all()
    session.commit()
    return rows_by_id(session, claimed)


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


def rows_by_id(session: Session, ids: Sequence[int]) -> list[OutboxMessage]:
    if not ids:
        return []
    return list(
        session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
        ).all()
    )


def release_rows(session: Session, ids: Sequence[int]) -> int:
    """Give back rows this sender leased and did not send (they stay pending, due now)."""
    if not ids:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "sending")
        .values(status="pending", leased_until=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def threads_for(session: Session, recipient: str, lead_ids: Iterable[str]) -> dict[str, str]:
    """Lead id → ts of the message that first named the lead to this recipient."""
    ids = list(lead_ids)
    if not ids:
        return {}
    rows = session.scalars(
        select(SlackThread).where(SlackThread.recipient == recipient, SlackThread.lead_id.in_(ids))
    ).all()
    return {row.lead_id: row.ts for row in rows}


def remember_threads(
    session: Session,
    recipient: str,
    lead_ids: Iterable[str],
    channel: str,
    ts: str,
    now: datetime,
) -> None:
    """The message ``ts`` becomes the thread of each lead not yet named to this recipient."""
    ids = list(dict.fromkeys(lead_ids))
    known = threads_for(session, recipient, ids)
    session.add_all(
        SlackThread(recipient=recipient, lead_id=lead_id, channel=channel, ts=ts, created_at=now)
        for lead_id in ids
        if lead_id not in known
    )


def set_health(session: Session, component: str, ok: bool, detail: str, now: datetime) -> None:
    row = session.get(HealthCheck, component)
    if row is None:
        session.add(HealthCheck(component=component, ok=ok, detail=detail, updated_at=now))
    elif row.ok != ok or row.detail != detail:
        row.ok, row.detail, row.updated_at = ok, detail, now


def health(session: Session) -> list[HealthCheck]:
    return list(session.scalars(select(HealthCheck).order_by(HealthCheck.component)).all())


def announced(session: Session, key_prefix: str, kinds: Sequence[str]) -> bool:
    """Whether a notice of one of ``kinds`` whose dedup key starts with ``key_prefix`` (lead,
    rule, deadline) went out."""
    found = session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.dedup_key.startswith(key_prefix, autoescape=True),
            OutboxMessage.kind.in_(kinds),
            OutboxMessage.status == "sent",
        )
        .limit(1)
    )
    return found is not None


#: Rows whose sending is over, one way or another.
FINISHED = ("sent", "failed", "rerouted", "superseded")


def prune(session: Session, before: datetime) -> int:
    """Delete finished rows created before ``before`` whose news cannot come back.

    The outbox is also the memory that keeps a notice from going out twice (its dedup key) and
    that tells a "done, late" from news nobody heard (``announced``). So a row stays, however
    old, while its lead's rule is still in warning or breached (the evaluate stage would write
    the same key again) and while any notice about its lead is still waiting to be sent. The
    notification log of Alertmanager has the same shape: a retention longer than any repeat.
    """
    open_finding = exists().where(
        Finding.lead_id == OutboxMessage.lead_id,
        Finding.rule == OutboxMessage.rule,
        Finding.state.in_(("warning", "breached")),
    )
    waiting = aliased(OutboxMessage)
    unsent_news = exists().where(
        waiting.lead_id == OutboxMessage.lead_id,
        waiting.status.in_(("pending", "sending")),
    )
    result = session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.status.in_(FINISHED),
            OutboxMessage.created_at < before,
            ~open_finding,
            ~unsent_news,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
