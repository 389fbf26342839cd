"""Away periods as stored: those typed with ``/sla away`` and those seen in a Slack status,
the leads each period's manager warning named, and the Slack statuses read (a cache).

A new ``/sla away`` replaces the rep's running one; ``/sla back`` ends every running one (a
Slack status period ends when the status is no longer seen). Nothing is deleted: an ended
period stays for ``explain``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from worker.availability import COMMAND, SLACK_STATUS, AwayPeriod
from worker.store.db import insert_missing
from worker.store.models import AwayPeriod as AwayRow
from worker.store.models import AwayWarning, SlackStatus


def _period(row: AwayRow) -> AwayPeriod:
    until = row.until
    if row.ended_at is not None and (until is None or row.ended_at < until):
        until = row.ended_at
    return AwayPeriod(row.email, row.source, row.from_at, until, f"away:{row.id}", row.set_by)


def _running(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        AwayRow.ended_at.is_(None),
        or_(AwayRow.until.is_(None), AwayRow.until > now),
    )


def go_away(session: Session, email: str, until: datetime, set_by: str, now: datetime) -> None:
    """``/sla away``: the rep is away from now until ``until`` (their running one ends)."""
    key = email.lower()
    for row in session.scalars(
        select(AwayRow).where(AwayRow.email == key, AwayRow.source == COMMAND, *_running(now))
    ):
        row.ended_at = now
    session.add(
        AwayRow(email=key, source=COMMAND, from_at=now, until=until, set_by=set_by[:320], at=now)
    )
    session.flush()


def come_back(session: Session, email: str, now: datetime) -> int:
    """``/sla back``: every running ``/sla away`` of the rep ends now; how many did."""
    rows = session.scalars(
        select(AwayRow).where(
            AwayRow.email == email.lower(), AwayRow.source == COMMAND, *_running(now)
        )
    ).all()
    for row in rows:
        row.ended_at = now
    return len(rows)


def running(session: Session, emails: Iterable[str] | None, now: datetime) -> list[AwayPeriod]:
    """The stored periods of these people (None: of everyone) in force at ``now``."""
    query = select(AwayRow).where(AwayRow.from_at <= now, *_running(now))
    if emails is not None:
        keys = sorted({e.lower() for e in emails})
        if not keys:
            return []
        query = query.where(AwayRow.email.in_(keys))
    return [_period(r) for r in session.scalars(query)]


def of_person(session: Session, email: str, since: datetime) -> list[AwayPeriod]:
    """A person's stored periods that were in force at some time after ``since``, oldest
    first (for ``explain``)."""
    rows = session.scalars(
        select(AwayRow).where(AwayRow.email == email.lower()).order_by(AwayRow.from_at, AwayRow.id)
    )
    return [p for p in (_period(r) for r in rows) if p.until is None or p.until > since]


def note_status(
    session: Session,
    email: str,
    marker: str | None,
    expires_at: datetime | None,
    shown: str,
    now: datetime,
) -> None:
    """What the person's Slack status says now: away (``marker`` matched: a period is opened,
    or its end follows the status's expiry) or not (a running status period ends)."""
    key = email.lower()
    open_rows = session.scalars(
        select(AwayRow).where(AwayRow.email == key, AwayRow.source == SLACK_STATUS, *_running(now))
    ).all()
    if marker is None:
        for row in open_rows:
            row.ended_at = now
        return
    if open_rows:
        for row in open_rows:
            row.until = expires_at
        return
    session.add(
        AwayRow(
            email=key,
            source=SLACK_STATUS,
            from_at=now,
            until=expires_at,
            set_by=f"Slack status {shown}"[:320],
            at=now,
        )
    )
    session.flush()


def cached_status(
    session: Session, email: str, now: datetime, ttl: timedelta
) -> SlackStatus | None:
    row = session.get(SlackStatus, email.lower())
    if row is None or row.looked_up_at + ttl < now:
        return None
    return row


def remember_status(
    session: Session,
    email: str,
    emoji: str,
    text: str,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    key = email.lower()
    insert_missing(
        session,
        SlackStatus,
        email=key,
        emoji=emoji[:100],
        text=text[:200],
        expires_at=expires_at,
        looked_up_at=now,
    )
    row = session.get(SlackStatus, key)
    assert row is not None  # inserted above, or there already
    row.emoji, row.text, row.expires_at, row.looked_up_at = emoji[:100], text[:200], expires_at, now


def note_warned(session: Session, period: str, email: str, lead_id: str, now: datetime) -> bool:
    """Note that the manager is warned about this lead in this period; False when they
    already were (one statement: two passes at once warn once)."""
    return insert_missing(session, AwayWarning, period=period, lead_id=lead_id, email=email, at=now)
