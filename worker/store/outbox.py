"""The outbox owns its rows: one way in (:func:`enqueue`), named transitions for every change of
status, the Slack user cache and the thread memory.

A stage hands the outbox :class:`Envelope` s; a deliver pass claims rows per recipient under its
holder name and moves each claimed row on with exactly one transition (:func:`mark_sent`,
:func:`reschedule`, :func:`release`, :func:`supersede`, :func:`reroute`, :func:`fail`), renewing
its claims while it works (:func:`renew`). One transition moves rows nobody holds: an
acknowledged breach's pending reminders are superseded (:func:`cancel_acknowledged`), and a
snoozed breach's pending reminders to the rep wait until the snooze ends
(:func:`postpone_snoozed`), the reminder an earlier snooze of it would have brought back
superseded (:func:`cancel_snooze_returns`). Each
transition is one conditional UPDATE that touches
only rows this holder still holds and sets every other field of the row consistently, so no
stage writes an outbox field by hand, and a pass whose claim ran out and was taken over can
change nothing. Inserts ignore a known dedup
key; claims are conditional updates whose row count says who won, so two senders never hold the
same row (healthchecks' ``Notification`` claim). No rendering and no Slack calls here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, aliased

from worker.notices import breach_reference
from worker.sla import RuleState
from worker.store.db import among, chunks, insert_missing
from worker.store.models import (
    Finding,
    HealthCheck,
    OutboxRow,
    SlackThread,
    SlackUserCache,
    StageRun,
)


class Status(StrEnum):
    """Where an outbox row is in its life."""

    PENDING = "pending"  # waiting for its due time
    SENDING = "sending"  # claimed by a deliver pass until ``leased_until``
    SENT = "sent"  # Slack accepted it
    FAILED = "failed"  # undeliverable, nobody to fall back to
    REROUTED = "rerouted"  # undeliverable here; a fallback row took over
    SUPERSEDED = "superseded"  # no longer true or wanted when it could be sent: not sent


#: Rows whose sending is over, one way or another.
FINISHED = (Status.SENT, Status.FAILED, Status.REROUTED, Status.SUPERSEDED)


class Delivery(StrEnum):
    """How one recipient's due rows become Slack messages (one renderer each, in deliver)."""

    DIRECT = "direct"  # notices as one list per recipient; later news in the lead's thread
    DIGEST = "digest"  # a manager's digest at the digest times, split to fit Slack's limits
    REPORT = "report"  # a ready-made message (a report), one post per row


@dataclass(frozen=True)
class Envelope:
    """What a stage hands the outbox: one payload for one recipient, with its dedup key
    (the same key written twice is delivered once) and the earliest time it may go out."""

    dedup_key: str
    kind: str  # a NoticeKind
    lead_id: str
    rule: str
    level: int
    recipient: str  # "email:<address>" or "channel:<#name or id>"
    delivery: Delivery
    payload: Mapping[str, Any]
    due_at: datetime


def enqueue(session: Session, envelopes: Iterable[Envelope], now: datetime) -> int:
    """Write envelopes as pending rows, ignoring any whose dedup key is already there; returns
    how many were new. The same on PostgreSQL and SQLite (both have ON CONFLICT DO NOTHING)."""
    values = [
        {
            "dedup_key": e.dedup_key,
            "kind": str(e.kind),
            "lead_id": e.lead_id,
            "rule": e.rule,
            "level": e.level,
            "recipient": e.recipient,
            "delivery": str(e.delivery),
            "payload": dict(e.payload),
            "created_at": now,
            "due_at": e.due_at,
            "status": Status.PENDING.value,
            "attempts": 0,
        }
        for e in envelopes
    ]
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return _copy_in(session, values)
    # One statement for the lot (SQLAlchemy's "insertmanyvalues" batches it); a row whose key is
    # already there returns nothing, so the returned ids are the new rows.
    stmt = (
        sqlite.insert(OutboxRow)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(OutboxRow.id)
    )
    return len(session.execute(stmt, values).all())


_ENQUEUED = (
    "dedup_key",
    "kind",
    "lead_id",
    "rule",
    "level",
    "recipient",
    "delivery",
    "payload",
    "created_at",
    "due_at",
    "status",
    "attempts",
)


def _copy_in(session: Session, values: list[dict[str, Any]]) -> int:
    """PostgreSQL: COPY the rows into a temporary table, then one INSERT … SELECT … ON CONFLICT
    DO NOTHING. A first pass queues hundreds of thousands of notices; as multi-row INSERTs the
    driver spent most of the pass parsing statement text (four times slower, measured)."""
    from psycopg.types.json import Jsonb

    columns = ", ".join(_ENQUEUED)
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a live connection of this session's transaction
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS outbox_in ON COMMIT DELETE ROWS AS "
            f"SELECT {columns} FROM outbox WITH NO DATA"
        )
        with cursor.copy(f"COPY outbox_in ({columns}) FROM STDIN") as copy:
            for row in values:
                copy.write_row([Jsonb(row[c]) if c == "payload" else row[c] for c in _ENQUEUED])
        cursor.execute(
            f"INSERT INTO outbox ({columns}) SELECT {columns} FROM outbox_in "
            f"ON CONFLICT (dedup_key) DO NOTHING"
        )
        inserted = int(cursor.rowcount)
        cursor.execute("TRUNCATE outbox_in")
    return inserted


# -- claiming -------------------------------------------------------------------------------


def _sendable(now: datetime, group_wait: timedelta = timedelta(0)) -> Any:
    """Pending and due (within ``group_wait``), or claimed by a sender whose lease ran out."""
    return or_(
        (OutboxRow.status == Status.PENDING) & (OutboxRow.due_at <= now + group_wait),
        (OutboxRow.status == Status.SENDING) & (OutboxRow.leased_until < now),
    )


def recipients_due(session: Session, now: datetime) -> list[str]:
    """Recipients with at least one row due now (or whose sender's lease ran out)."""
    query = (
        select(OutboxRow.recipient)
        .where(_sendable(now))
        .group_by(OutboxRow.recipient)
        .order_by(func.min(OutboxRow.due_at))
    )
    return list(session.scalars(query).all())


def claim(
    session: Session,
    recipient: str,
    now: datetime,
    lease_for: timedelta,
    group_wait: timedelta = timedelta(0),
    *,
    holder: str,
    delivery: Delivery | None = None,
    level: int | None = None,
) -> list[OutboxRow]:
    """Lease every sendable row of one recipient (only those of ``delivery`` and ``level``,
    when given); a row another sender holds is skipped.

    Rows falling due within ``group_wait`` ride along, so they go out in the same message.
    The claim is one conditional UPDATE … RETURNING (PostgreSQL and SQLite ≥ 3.35): each row
    is taken only if it is still sendable when the update reaches it, as healthchecks does
    row by row, so two deliver runs racing for the same row cannot both win it.
    """
    only = []
    if delivery is not None:
        only.append(OutboxRow.delivery == str(delivery))
    if level is not None:
        only.append(OutboxRow.level == level)
    claimed = session.scalars(
        update(OutboxRow)
        .where(OutboxRow.recipient == recipient, _sendable(now, group_wait), *only)
        .values(
            status=Status.SENDING,
            leased_until=now + lease_for,
            claimed_by=holder,
            attempts=OutboxRow.attempts + 1,
        )
        .returning(OutboxRow.id)
    ).all()
    session.commit()
    return rows_by_id(session, claimed)


def rows_by_id(session: Session, ids: Sequence[int]) -> list[OutboxRow]:
    if not ids:
        return []
    return list(
        session.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids)).order_by(OutboxRow.id))
    )


# -- transitions of claimed rows ------------------------------------------------------------


def _held(ids: Sequence[int], holder: str) -> Any:
    return (
        OutboxRow.id.in_(ids),
        OutboxRow.status == Status.SENDING,
        OutboxRow.claimed_by == holder,
    )


def renew(session: Session, ids: Sequence[int], holder: str, until: datetime) -> int:
    """Extend this holder's claim on ``ids`` to ``until``; returns how many it still held (a
    claim that ran out and was taken over by another pass is not renewed)."""
    if not ids:
        return 0
    result = session.execute(
        update(OutboxRow)
        .where(*_held(ids, holder))
        .values(leased_until=until)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _move(session: Session, ids: Sequence[int], holder: str, **values: Any) -> int:
    """Set ``values`` on the rows among ``ids`` this holder still holds; the claim ends."""
    if not ids:
        return 0
    result = session.execute(
        update(OutboxRow)
        .where(*_held(ids, holder))
        .values(leased_until=None, claimed_by=None, **values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def mark_sent(
    session: Session,
    ids: Sequence[int],
    holder: str,
    *,
    channel: str,
    ts: str,
    now: datetime,
) -> int:
    """Slack accepted the message carrying these rows (at ``ts`` in ``channel``)."""
    return _move(
        session,
        ids,
        holder,
        status=Status.SENT,
        sent_at=now,
        last_error=None,
        slack_channel=channel,
        slack_ts=ts,
    )


def reschedule(
    session: Session,
    ids: Sequence[int],
    holder: str,
    *,
    due_at: datetime,
    error: str | None = None,
) -> int:
    """Back to pending until ``due_at``: a retry after ``error``, or (no error) a hold until
    the recipient's working hours."""
    return _move(session, ids, holder, status=Status.PENDING, due_at=due_at, last_error=error)


def release(session: Session, ids: Sequence[int], holder: str) -> int:
    """Give back rows this holder claimed and did not send: pending again, due as before."""
    return _move(session, ids, holder, status=Status.PENDING)


def release_all(session: Session, holder: str, keep: Sequence[int] = ()) -> int:
    """Give back every row this holder still holds but those in ``keep``: a pass that stops on
    an error frees its claims now rather than when they run out. By holder, not by ids: a claim
    whose commit answer was lost holds rows the pass never saw."""
    query = update(OutboxRow).where(
        OutboxRow.status == Status.SENDING, OutboxRow.claimed_by == holder
    )
    if keep:
        query = query.where(OutboxRow.id.not_in(keep))
    result = session.execute(
        query.values(status=Status.PENDING, leased_until=None, claimed_by=None).execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def supersede(session: Session, ids: Sequence[int], holder: str, reason: str) -> int:
    """The news is no longer true: never sent, with the reason kept."""
    return _move(session, ids, holder, status=Status.SUPERSEDED, last_error=reason)


def cancel_acknowledged(
    session: Session,
    lead_id: str,
    rule: str,
    deadline_at: datetime,
    kinds: Iterable[str],
    reason: str,
) -> int:
    """Someone acknowledged this breach: its reminders of ``kinds`` (breach, escalation) not
    yet sent are superseded with ``reason``, never sent. Returns how many were cancelled."""
    return _pending_of_breach(
        session,
        (lead_id, rule, deadline_at),
        [OutboxRow.kind.in_(list(kinds))],
        status=Status.SUPERSEDED,
        last_error=reason,
    )


def postpone_snoozed(
    session: Session,
    lead_id: str,
    rule: str,
    deadline_at: datetime,
    kinds: Iterable[str],
    until: datetime,
) -> int:
    """Someone snoozed this breach's reminders to the rep: its level-0 rows of ``kinds``
    (warning, breach) still pending and due before ``until`` are due at ``until`` instead.
    Rows above level 0 (the escalation ladder) keep their time. Returns how many were moved."""
    return _pending_of_breach(
        session,
        (lead_id, rule, deadline_at),
        [OutboxRow.kind.in_(list(kinds)), OutboxRow.level == 0, OutboxRow.due_at < until],
        due_at=until,
    )


#: The repeat part of the dedup key of a reminder a snooze brings back: ``snooze-<until>``.
SNOOZE_RETURN = "snooze-"


def cancel_snooze_returns(
    session: Session, lead_id: str, rule: str, deadline_at: datetime, keep: str, reason: str
) -> int:
    """The breach was snoozed again: the reminders earlier snoozes of it were to bring back,
    still pending, are superseded with ``reason`` — all but the one keyed ``keep`` (this
    snooze's). Returns how many were cancelled."""
    return _pending_of_breach(
        session,
        (lead_id, rule, deadline_at),
        [
            OutboxRow.dedup_key.contains(f"|{SNOOZE_RETURN}", autoescape=True),
            OutboxRow.dedup_key != keep,
            OutboxRow.level == 0,
        ],
        status=Status.SUPERSEDED,
        last_error=reason,
    )


def cancel_reminders_to(
    session: Session, lead_id: str, recipient: str, kinds: Iterable[str], reason: str
) -> int:
    """The lead went to another owner: its rows of ``kinds`` (the rep's reminders) to
    ``recipient`` (the previous owner) not yet sent are superseded with ``reason``, never
    sent. Returns how many were cancelled."""
    result = session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.lead_id == lead_id,
            OutboxRow.recipient == recipient,
            OutboxRow.kind.in_(list(kinds)),
            OutboxRow.status == Status.PENDING,
        )
        .values(status=Status.SUPERSEDED, last_error=reason, leased_until=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _pending_of_breach(
    session: Session,
    breach: tuple[str, str, datetime],
    conditions: Sequence[Any],
    **values: Any,
) -> int:
    """Set ``values`` on the breach's (lead, rule, deadline) rows that meet ``conditions`` and
    are still pending: a row a deliver pass holds is on its way (its transition is the
    pass's), and one sent stays sent. Returns how many rows changed."""
    lead_id, rule, deadline_at = breach
    prefix = f"{breach_reference(lead_id, rule, deadline_at)}|"
    result = session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.lead_id == lead_id,
            OutboxRow.rule == rule,
            OutboxRow.dedup_key.startswith(prefix, autoescape=True),
            OutboxRow.status == Status.PENDING,
            *conditions,
        )
        .values(leased_until=None, claimed_by=None, **values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def fail(session: Session, ids: Sequence[int], holder: str, error: str) -> int:
    """Undeliverable and nobody to fall back to: failed for good, with the error kept."""
    return _move(session, ids, holder, status=Status.FAILED, last_error=error)


def reroute(
    session: Session, row: OutboxRow, holder: str, to: str, reason: str, now: datetime
) -> int:
    """Hand one claimed row to the next recipient ``to``: the row is marked rerouted with the
    reason, and a copy for ``to`` is enqueued, due now, its payload saying whom it could not
    reach and why. Returns 1 when the row was still this holder's to reroute."""
    error = f"{reason}: sent to {to} instead"
    if not _move(session, [row.id], holder, status=Status.REROUTED, last_error=error):
        return 0
    payload = {
        **row.payload,
        "undeliverable_to": row.recipient.partition(":")[2],
        "undeliverable_because": reason,
    }
    copy = Envelope(
        dedup_key=f"{row.dedup_key}|fallback:{to}",
        kind=row.kind,
        lead_id=row.lead_id,
        rule=row.rule,
        level=row.level,
        recipient=to,
        delivery=Delivery(row.delivery),
        payload=payload,
        due_at=now,
    )
    enqueue(session, [copy], now)
    return 1


# -- what deliver remembers -------------------------------------------------------------------


def cached_slack_user(
    session: Session, email: str, now: datetime, ttl: timedelta
) -> SlackUserCache | None:
    row = session.get(SlackUserCache, email.lower())
    if row is None or row.looked_up_at + ttl < now:
        return None
    return row


def cached_slack_user_by_id(
    session: Session, user_id: str, now: datetime, ttl: timedelta
) -> SlackUserCache | None:
    """The latest lookup that found this Slack user (by e-mail), if still fresh: who a person
    acting from Slack is, without asking Slack again."""
    query = (
        select(SlackUserCache)
        .where(SlackUserCache.user_id == user_id, SlackUserCache.looked_up_at >= now - ttl)
        .order_by(SlackUserCache.looked_up_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def remember_slack_user(
    session: Session,
    email: str,
    user_id: str | None,
    tz: str | None,
    now: datetime,
    name: str | None = None,
) -> None:
    key = email.lower()
    insert_missing(
        session, SlackUserCache, email=key, user_id=user_id, tz=tz, name=name, looked_up_at=now
    )
    row = session.get(SlackUserCache, key)
    assert row is not None  # inserted above, or there already
    row.user_id = user_id
    row.tz = tz
    row.name = name
    row.looked_up_at = now


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
    insert_missing(session, HealthCheck, component=component, ok=ok, detail=detail, updated_at=now)
    row = session.get(HealthCheck, component)
    assert row is not None  # inserted above, or there already
    if row.ok != ok or row.detail != detail:
        row.ok, row.detail, row.updated_at = ok, detail, now


def record_stage_run(session: Session, name: str, now: datetime, error: str | None = None) -> None:
    """Note that stage ``name`` succeeded now (``error`` None) or failed with ``error``."""
    insert_missing(session, StageRun, name=name, last_error="")
    row = session.get(StageRun, name)
    assert row is not None  # inserted above, or there already
    if error is None:
        row.last_ok_at = now
    else:
        row.last_failed_at, row.last_error = now, error[:2000]


def stage_runs(session: Session) -> dict[str, StageRun]:
    return {row.name: row for row in session.scalars(select(StageRun))}


def health(session: Session) -> list[HealthCheck]:
    return list(session.scalars(select(HealthCheck).order_by(HealthCheck.component)).all())


def counts_by_status(session: Session) -> dict[str, int]:
    """How many rows are in each status (for ``sla-worker health``)."""
    rows = session.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))
    return {status: count for status, count in rows.all()}


def existing_keys(session: Session, lead_ids: Sequence[str]) -> set[str]:
    """The dedup keys of these leads' notices already in the outbox (one query per 500 leads,
    an index-only scan of ``ix_outbox_lead_id_keys``): a stage skips building notices that
    would be dropped anyway."""
    found: set[str] = set()
    for chunk in chunks(lead_ids):
        query = select(OutboxRow.dedup_key).where(among(session, OutboxRow.lead_id, chunk))
        found.update(session.connection().execute(query).scalars().all())  # fetched at once
    return found


def sent_about(session: Session, lead_id: str) -> list[OutboxRow]:
    """The messages sent about a lead (as long as ``prune`` keeps them), oldest first."""
    return list(
        session.scalars(
            select(OutboxRow)
            .where(OutboxRow.lead_id == lead_id, OutboxRow.status == "sent")
            .order_by(OutboxRow.sent_at, OutboxRow.id)
        )
    )


def paged(session: Session, key_prefix: str, kinds: Iterable[str]) -> set[str]:
    """Who was sent a notice of one of ``kinds`` whose dedup key starts with ``key_prefix``
    (lead, rule, deadline): the recipients a "done, late" goes to, empty when nobody heard."""
    return set(
        session.scalars(
            select(OutboxRow.recipient)
            .where(
                OutboxRow.dedup_key.startswith(key_prefix, autoescape=True),
                OutboxRow.kind.in_(list(kinds)),
                OutboxRow.status == Status.SENT,
            )
            .distinct()
        )
    )


def prune(session: Session, before: datetime) -> int:
    """Delete finished rows created before ``before`` whose news cannot come back.

    The outbox is also the memory that keeps a notice from going out twice (its dedup key) and
    that tells a "done, late" from news nobody heard (``paged``). So a row stays, however
    old, while its lead's rule is still in warning or breached (the evaluate stage would write
    the same key again) and while any notice about its lead is still waiting to be sent. The
    notification log of Alertmanager has the same shape: a retention longer than any repeat.
    """
    open_finding = exists().where(
        Finding.lead_id == OutboxRow.lead_id,
        Finding.rule == OutboxRow.rule,
        Finding.state.in_((RuleState.WARNING, RuleState.BREACHED)),
    )
    waiting = aliased(OutboxRow)
    unsent_news = exists().where(
        waiting.lead_id == OutboxRow.lead_id,
        waiting.status.in_((Status.PENDING, Status.SENDING)),
    )
    result = session.execute(
        delete(OutboxRow).where(
            OutboxRow.status.in_(FINISHED),
            OutboxRow.created_at < before,
            ~open_finding,
            ~unsent_news,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
