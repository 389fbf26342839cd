"""Deliver: send due outbox rows to Slack, one message per recipient for what is due together.

Rows are leased before sending (a crashed sender's lease runs out and another retries), marked
sent only after Slack accepted them, and never dropped: transient errors reschedule with
backoff or Slack's Retry-After, rejected credentials stop the run with every row still
pending, and permanent errors are recorded on the row and logged. It never evaluates leads.

Exactly-once holds except in one window: a sender killed after Slack accepted a message and
before the row is marked sent. That row is sent again when its lease expires (at most one
duplicate, and only then); Slack's API has no idempotency key to close it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from worker.errors import AuthError, PermanentError, TransientError
from worker.notices import Notice
from worker.slack.messages import SlackMessage, render_notices
from worker.store import outbox
from worker.store.db import session_scope
from worker.store.models import OutboxMessage

log = logging.getLogger(__name__)

LEASE_FOR = timedelta(minutes=2)
USER_CACHE_TTL = timedelta(hours=24)
MAX_BACKOFF = timedelta(hours=1)


class SlackUserLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def tz(self) -> str | None: ...


class SentLike(Protocol):
    @property
    def channel(self) -> str: ...
    @property
    def ts(self) -> str: ...


class SlackSender(Protocol):
    def lookup_user_by_email(self, email: str) -> SlackUserLike | None: ...

    def post_message(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, object]] | None = None,
        thread_ts: str | None = None,
    ) -> SentLike: ...


@dataclass
class Rendered:
    """A message as it would be sent (for dry runs and the demo)."""

    recipient: str
    message: SlackMessage


@dataclass
class DeliverSummary:
    messages: int = 0
    rows_sent: int = 0
    rows_retrying: int = 0
    rows_failed: int = 0
    auth_failed: bool = False
    rendered: list[Rendered] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "rows_sent": self.rows_sent,
            "rows_retrying": self.rows_retrying,
            "rows_failed": self.rows_failed,
            "auth_failed": self.auth_failed,
        }


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> timedelta:
    """Exponential backoff with full jitter, capped at an hour."""
    ceiling = min(timedelta(seconds=30) * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return timedelta(seconds=max(1.0, ceiling.total_seconds() * (0.5 + rng() / 2)))


def render_rows(rows: list[OutboxMessage]) -> SlackMessage:
    return render_notices([Notice.from_payload(r.payload) for r in rows])


def preview(
    sessions: Callable[[], Session], now: datetime, group_wait: timedelta
) -> list[Rendered]:
    """What deliver would send now, without leasing or sending anything (``--dry-run``)."""
    out: list[Rendered] = []
    with session_scope(sessions) as session:
        for recipient in outbox.recipients_due(session, now):
            rows = outbox.pending_rows(session, recipient, now + group_wait)
            if rows:
                out.append(Rendered(recipient, render_rows(rows)))
    return out


def deliver(
    slack: SlackSender,
    sessions: Callable[[], Session],
    now: datetime,
    *,
    group_wait: timedelta = timedelta(0),
    lease_for: timedelta = LEASE_FOR,
) -> DeliverSummary:
    summary = DeliverSummary()
    with session_scope(sessions) as session:
        recipients = outbox.recipients_due(session, now)
    for recipient in recipients:
        with session_scope(sessions) as session:
            rows = outbox.claim_rows(session, recipient, now, lease_for, group_wait)
            if not rows:
                continue  # another sender holds them
            try:
                channel = _channel_for(slack, session, recipient, now)
                if channel is None:
                    raise PermanentError(
                        f"no Slack user has the e-mail of {recipient}", code="users_not_found"
                    )
                message = render_rows(rows)
                sent = slack.post_message(channel, message.text, blocks=message.blocks)
            except AuthError as e:
                log.error("Slack rejected the bot token (%s); delivery paused", e.code)
                _release(rows, now, None, str(e.code), reschedule=False)
                summary.auth_failed = True
                summary.rows_retrying += len(rows)
                return summary
            except TransientError as e:
                wait = e.retry_after or backoff(max(r.attempts for r in rows))
                log.warning("sending to %s failed (%s); retry in %s", recipient, e, wait)
                _release(rows, now, wait, str(e), reschedule=True)
                summary.rows_retrying += len(rows)
                continue
            except PermanentError as e:
                log.error(
                    "sending to %s failed for good (%s): %d notifications kept as failed",
                    recipient,
                    e.code or e,
                    len(rows),
                )
                for row in rows:
                    row.status = "failed"
                    row.leased_until = None
                    row.last_error = f"{e.code}: {e}" if e.code else str(e)
                summary.rows_failed += len(rows)
                continue
            for row in rows:
                row.status = "sent"
                row.sent_at = now
                row.leased_until = None
                row.last_error = None
                row.slack_channel = sent.channel
                row.slack_ts = sent.ts
            summary.messages += 1
            summary.rows_sent += len(rows)
            summary.rendered.append(Rendered(recipient, message))
    return summary


def _release(
    rows: list[OutboxMessage],
    now: datetime,
    wait: timedelta | None,
    error: str,
    *,
    reschedule: bool,
) -> None:
    for row in rows:
        row.status = "pending"
        row.leased_until = None
        row.last_error = error
        if reschedule and wait is not None:
            row.due_at = now + wait


def _channel_for(slack: SlackSender, session: Session, recipient: str, now: datetime) -> str | None:
    """``email:x`` → the person's Slack user id (posting to it opens the DM), cached for a
    day; ``channel:#x`` → ``#x``."""
    kind, _, address = recipient.partition(":")
    if kind == "channel":
        return address
    cached = outbox.cached_slack_user(session, address, now, USER_CACHE_TTL)
    if cached is not None:
        return cached.user_id
    user = slack.lookup_user_by_email(address)
    outbox.remember_slack_user(
        session, address, user.id if user else None, user.tz if user else None, now
    )
    return user.id if user else None
