"""Deliver: send due outbox rows to Slack, grouped per recipient, threaded per lead, paced per
channel, and never dropped.

One pass: find recipients with due rows; lease their rows; resolve each recipient to a Slack
target (a user id via ``users.lookupByEmail``, cached; or a channel); hold rows for a person
outside their working hours (their Slack time zone); plan messages — reminders as one message
per recipient (updates about a lead already named reply in its thread), digests split to fit
Slack's limits; then send them, at most one message per second per channel (Slack's
chat.postMessage pace, docs.slack.dev/reference/methods/chat.postMessage) while different
channels interleave. Rows are marked sent only after Slack accepted them. Transient errors
reschedule (Retry-After or backoff); rejected credentials stop the pass with every row still
pending and turn health red; an unknown rep or a broken channel re-routes the notice to the
manager or the fallback channel, recorded on the original row; anything else is recorded as
failed. It never evaluates leads.

Exactly-once holds except in one window: a sender killed after Slack accepted a message and
before its rows were marked sent. Those rows are sent again when the lease runs out (at most
one duplicate, and only then): Slack's API has no idempotency key that could close it.
"""

from __future__ import annotations

import heapq
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from worker.config import Ruleset
from worker.errors import AuthError, PermanentError, TransientError
from worker.notices import BREACH, ESCALATION, RESOLVED, WARNING, Notice
from worker.pipeline.report import REPORT
from worker.slack.messages import SlackMessage, render_digest, render_notices
from worker.store import outbox, queries
from worker.store.db import session_scope
from worker.store.models import OutboxMessage

log = logging.getLogger(__name__)

LEASE_FOR = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)
#: chat.postMessage allows about one message per second per channel (bursts tolerated).
CHANNEL_PACE = timedelta(seconds=1)
#: Errors that mean "this channel cannot take messages": re-route to the fallback channel.
CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


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
class Post:
    """One Slack message to send and the outbox rows it carries."""

    recipient: str
    channel: str
    message: SlackMessage
    row_ids: list[int]
    thread_ts: str | None = None
    #: Leads this message names for the first time: later updates reply in its thread.
    opens_threads_for: list[str] = field(default_factory=list)
    #: False for all but the last part of a split digest: the rows count as sent only when
    #: every part went out.
    marks_sent: bool = True
    #: Parts of one digest share this key; after a failed part the rest are not sent.
    digest_key: int | None = None


@dataclass
class DeliverSummary:
    messages: int = 0
    rows_sent: int = 0
    rows_retrying: int = 0
    rows_failed: int = 0
    rows_rerouted: int = 0
    rows_held: int = 0
    rows_superseded: int = 0
    auth_failed: bool = False
    rendered: list[Rendered] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "rows_sent": self.rows_sent,
            "rows_retrying": self.rows_retrying,
            "rows_failed": self.rows_failed,
            "rows_rerouted": self.rows_rerouted,
            "rows_held": self.rows_held,
            "rows_superseded": self.rows_superseded,
            "auth_failed": self.auth_failed,
        }


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> timedelta:
    """Exponential backoff with jitter, from 30 s, capped at an hour."""
    ceiling = min(timedelta(seconds=30) * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return timedelta(seconds=max(1.0, ceiling.total_seconds() * (0.5 + rng() / 2)))


def _prerendered(row: OutboxMessage) -> SlackMessage:
    """A report row carries its message ready-made."""
    return SlackMessage(str(row.payload["text"]), list(row.payload.get("blocks") or []))


def notices_of(rows: Sequence[OutboxMessage], tz: str | None = None) -> list[Notice]:
    """The rows' notices, with deadlines shown in ``tz`` (the reader's own zone) when known."""
    notices = [Notice.from_payload(r.payload) for r in rows]
    return [replace(n, timezone=tz) for n in notices] if tz else notices


def render_rows(
    rows: Sequence[OutboxMessage], now: datetime, tz: str | None = None
) -> list[SlackMessage]:
    notices = notices_of(rows, tz)
    if rows and rows[0].delivery == "digest":
        return render_digest(notices, at=now)
    return [render_notices(notices)]


def preview(sessions: Callable[[], Session], now: datetime) -> list[Rendered]:
    """What deliver would send by ``now``, without leasing or sending (``--dry-run``)."""
    out: list[Rendered] = []
    with session_scope(sessions) as session:
        for recipient in outbox.recipients_due(session, now):
            rows = outbox.pending_rows(session, recipient, now)
            out += [Rendered(recipient, _prerendered(r)) for r in rows if r.kind == REPORT]
            for delivery in ("direct", "digest"):
                chosen = [r for r in rows if r.delivery == delivery and r.kind != REPORT]
                if chosen:
                    out += [Rendered(recipient, m) for m in render_rows(chosen, now)]
    return out


class ChannelPacer:
    """Orders posts so that each channel gets at most one message per ``pace`` while other
    channels go on; waits (through the injected ``sleep``) only when every channel with work
    left is still inside its pace."""

    def __init__(
        self,
        pace: timedelta = CHANNEL_PACE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pace = pace.total_seconds()
        self.clock = clock
        self.sleep = sleep

    def order(self, posts: Sequence[Post]) -> Iterator[Post]:
        queues: dict[str, list[Post]] = {}
        for post in posts:
            queues.setdefault(post.channel, []).append(post)
        ready: list[tuple[float, int, str]] = []
        start = self.clock()
        for seq, channel in enumerate(queues):
            heapq.heappush(ready, (start, seq, channel))
        seq = len(queues)
        while ready:
            at, _, channel = heapq.heappop(ready)
            wait = at - self.clock()
            if wait > 0:
                self.sleep(wait)
            yield queues[channel].pop(0)
            if queues[channel]:
                seq += 1
                heapq.heappush(ready, (self.clock() + self.pace, seq, channel))


@dataclass
class Target:
    channel: str
    tz: str | None = None


class _Stop(Exception):
    """Credentials were rejected: end the pass, leave everything pending."""


def deliver(
    slack: SlackSender,
    sessions: Callable[[], Session],
    rules: Ruleset,
    now: datetime,
    *,
    lease_for: timedelta = LEASE_FOR,
    pacer: ChannelPacer | None = None,
) -> DeliverSummary:
    """One delivery pass (see the module docstring)."""
    summary = DeliverSummary()
    pacer = pacer or ChannelPacer()
    group_wait = rules.config.notifications.group_wait
    with session_scope(sessions) as session:
        recipients = outbox.recipients_due(session, now)
    posts: list[Post] = []
    try:
        for recipient in recipients:
            posts += _plan_recipient(
                slack, sessions, rules, recipient, now, lease_for, group_wait, summary
            )
        failed_digests: set[int] = set()
        for post in pacer.order(posts):
            if post.digest_key is not None and post.digest_key in failed_digests:
                continue
            if not _send(slack, sessions, rules, post, now, summary) and post.digest_key:
                failed_digests.add(post.digest_key)
    except _Stop:
        summary.auth_failed = True
        claimed = [i for post in posts for i in post.row_ids]
        with session_scope(sessions) as session:
            summary.rows_retrying += outbox.release_rows(session, claimed)
    return summary


def _plan_recipient(
    slack: SlackSender,
    sessions: Callable[[], Session],
    rules: Ruleset,
    recipient: str,
    now: datetime,
    lease_for: timedelta,
    group_wait: timedelta,
    summary: DeliverSummary,
) -> list[Post]:
    with session_scope(sessions) as session:
        rows = outbox.claim_rows(session, recipient, now, lease_for, group_wait)
        if not rows:
            return []  # another sender holds them
        superseded = _drop_superseded(session, rows)
        summary.rows_superseded += len(superseded)
        rows = [r for r in rows if r not in superseded]
        if not rows:
            return []
        try:
            target = _target_for(slack, session, rules, recipient, now)
        except AuthError as e:
            # Record it and give the rows back in this transaction; the pass stops below,
            # once the transaction is committed.
            _auth_failed(session, e, now)
            for row in rows:
                row.status, row.leased_until = "pending", None
            summary.rows_retrying += len(rows)
        except TransientError as e:
            _reschedule(rows, now, e)
            summary.rows_retrying += len(rows)
            return []
        else:
            if target is None:
                summary.rows_rerouted += _reroute(session, rules, rows, "users_not_found", now)
                summary.rows_failed += sum(1 for r in rows if r.status == "failed")
                return []
            held = _hold_for_quiet_hours(rules, rows, target, now)
            summary.rows_held += len(held)
            rows = [r for r in rows if r not in held]
            return _plan_posts(session, recipient, target, rows, now)
    raise _Stop


def _plan_posts(
    session: Session,
    recipient: str,
    target: Target,
    rows: list[OutboxMessage],
    now: datetime,
) -> list[Post]:
    posts: list[Post] = [
        Post(recipient, target.channel, _prerendered(r), [r.id]) for r in rows if r.kind == REPORT
    ]
    rows = [r for r in rows if r.kind != REPORT]
    digests = [r for r in rows if r.delivery == "digest"]
    if digests:
        messages = render_digest(notices_of(digests, target.tz), at=now)
        ids = [r.id for r in digests]
        for number, message in enumerate(messages, start=1):
            posts.append(
                Post(
                    recipient,
                    target.channel,
                    message,
                    ids,
                    marks_sent=number == len(messages),
                    digest_key=ids[0],
                )
            )
    direct = [r for r in rows if r.delivery != "digest"]
    threads = outbox.threads_for(session, recipient, {r.lead_id for r in direct})
    fresh: list[OutboxMessage] = []
    replies: dict[str, list[OutboxMessage]] = {}
    for row in direct:
        if row.lead_id in threads:
            replies.setdefault(row.lead_id, []).append(row)
        else:
            fresh.append(row)
    if fresh:
        message = render_notices(notices_of(fresh, target.tz))
        leads = list(dict.fromkeys(r.lead_id for r in fresh))
        posts.append(
            Post(recipient, target.channel, message, [r.id for r in fresh], opens_threads_for=leads)
        )
    for lead_id, lead_rows in replies.items():
        message = render_notices(notices_of(lead_rows, target.tz))
        posts.append(
            Post(
                recipient,
                target.channel,
                message,
                [r.id for r in lead_rows],
                thread_ts=threads[lead_id],
            )
        )
    return posts


def _send(
    slack: SlackSender,
    sessions: Callable[[], Session],
    rules: Ruleset,
    post: Post,
    now: datetime,
    summary: DeliverSummary,
) -> bool:
    """Send one post and record the outcome on its rows; True when Slack accepted it."""
    try:
        sent = slack.post_message(
            post.channel,
            post.message.text,
            blocks=post.message.blocks,
            thread_ts=post.thread_ts,
        )
    except AuthError as e:
        with session_scope(sessions) as session:
            _auth_failed(session, e, now)
        raise _Stop from None
    except TransientError as e:
        log.warning("sending to %s failed (%s); will retry", post.recipient, e)
        with session_scope(sessions) as session:
            rows = outbox.rows_by_id(session, post.row_ids)
            _reschedule(rows, now, e)
            summary.rows_retrying += len(rows)
        return False
    except PermanentError as e:
        with session_scope(sessions) as session:
            rows = outbox.rows_by_id(session, post.row_ids)
            if e.code in CHANNEL_ERRORS:
                summary.rows_rerouted += _reroute(session, rules, rows, e.code or "", now)
            else:
                _fail(rows, e)
            summary.rows_failed += sum(1 for r in rows if r.status == "failed")
        return False
    summary.messages += 1
    summary.rendered.append(Rendered(post.recipient, post.message))
    with session_scope(sessions) as session:
        outbox.set_health(session, "slack", True, "", now)
        if not post.marks_sent:
            return True
        rows = outbox.rows_by_id(session, post.row_ids)
        for row in rows:
            row.status = "sent"
            row.sent_at = now
            row.leased_until = None
            row.last_error = None
            row.slack_channel = sent.channel
            row.slack_ts = sent.ts
        outbox.remember_threads(
            session, post.recipient, post.opens_threads_for, sent.channel, sent.ts, now
        )
    summary.rows_sent += len(post.row_ids)
    return True


def _target_for(
    slack: SlackSender, session: Session, rules: Ruleset, recipient: str, now: datetime
) -> Target | None:
    """``email:x`` → the person's Slack user id (posting to it opens the DM), cached;
    ``channel:#x`` → ``#x``. None: Slack knows no such person."""
    kind, _, address = recipient.partition(":")
    if kind == "channel":
        return Target(address)
    ttl = rules.config.notifications.user_cache_for
    cached = outbox.cached_slack_user(session, address, now, ttl)
    if cached is not None:
        return Target(cached.user_id, cached.tz) if cached.user_id else None
    user = slack.lookup_user_by_email(address)
    outbox.remember_slack_user(
        session, address, user.id if user else None, user.tz if user else None, now
    )
    return Target(user.id, user.tz) if user else None


#: The findings under which a notice of this kind is still true.
_STILL_TRUE = {WARNING: {"warning"}, BREACH: {"breached"}, ESCALATION: {"breached"}}


def _drop_superseded(session: Session, rows: list[OutboxMessage]) -> list[OutboxMessage]:
    """Notices the lead outran while they waited (quiet hours, a weekend, a retry): a warning
    or an overdue notice for a rule that is met by now, and a "done, late" for a breach that
    was never announced. They are marked superseded and not sent: news that is no longer
    true is noise."""
    findings = queries.findings_for(
        session, sorted({r.lead_id for r in rows if r.kind in _STILL_TRUE})
    )
    dropped = []
    for row in rows:
        if row.kind in _STILL_TRUE:
            finding = findings[row.lead_id].get(row.rule)
            if finding is not None and finding.state in _STILL_TRUE[row.kind]:
                continue
        elif row.kind == RESOLVED:
            prefix = f"{row.lead_id}|{row.rule}|{row.payload.get('deadline_at')}|"
            if outbox.announced(session, prefix, (BREACH, ESCALATION)):
                continue
        else:
            continue
        row.status, row.leased_until = "superseded", None
        row.last_error = "no longer true when it could be sent"
        dropped.append(row)
    return dropped


def _hold_for_quiet_hours(
    rules: Ruleset, rows: list[OutboxMessage], target: Target, now: datetime
) -> list[OutboxMessage]:
    """Rows for a person outside their own working hours go back to wait for the opening.

    The team calendar already held them at evaluation; a person whose Slack profile is in
    another time zone gets the team's hours read in their own zone.
    """
    if not target.tz:
        return []
    held = []
    for row in rows:
        if row.delivery == "digest" or row.kind == REPORT:
            continue
        notice = Notice.from_payload(row.payload)
        if not notice.quiet or not notice.team:
            continue
        team = rules.teams.get(notice.team)
        if team is None or team.calendar.timezone == target.tz:
            continue
        calendar = rules.calendar_in_zone(notice.team, target.tz)
        if not calendar.is_open(now):
            row.status = "pending"
            row.leased_until = None
            row.due_at = calendar.next_open_at(now)
            held.append(row)
    return held


def _reroute(
    session: Session, rules: Ruleset, rows: list[OutboxMessage], reason: str, now: datetime
) -> int:
    """Hand undeliverable rows to the next recipient: a rep → the team's manager; a channel →
    the fallback channel. The original row keeps the reason; a row nobody can take is failed."""
    rerouted = 0
    fallback_rows = []
    for row in rows:
        notice = Notice.from_payload(row.payload) if row.kind != REPORT else None
        team = rules.teams.get(notice.team) if notice else None
        if row.recipient.startswith("channel:"):
            channel = rules.config.notifications.fallback_channel
            fallback = f"channel:{channel}" if channel else None
        else:
            fallback = f"email:{team.manager.lower()}" if team and team.manager else None
        if fallback is None or fallback == row.recipient:
            row.status = "failed"
            row.leased_until = None
            row.last_error = f"{reason}: no fallback recipient"
            log.error(
                "notice %s to %s undeliverable (%s), no fallback",
                row.dedup_key,
                row.recipient,
                reason,
            )
            continue
        payload = (
            replace(
                notice,
                undeliverable_to=row.recipient.partition(":")[2],
                undeliverable_because=reason,
            ).to_payload()
            if notice is not None
            else row.payload  # a report goes to the fallback as it is
        )
        fallback_rows.append(
            {
                "dedup_key": f"{row.dedup_key}|fallback:{fallback}",
                "kind": row.kind,
                "lead_id": row.lead_id,
                "rule": row.rule,
                "level": row.level,
                "recipient": fallback,
                "delivery": row.delivery,
                "payload": payload,
                "created_at": now,
                "due_at": now,
                "status": "pending",
                "attempts": 0,
            }
        )
        row.status = "rerouted"
        row.leased_until = None
        row.last_error = f"{reason}: sent to {fallback} instead"
        rerouted += 1
        log.warning(
            "notice to %s undeliverable (%s): re-routed to %s", row.recipient, reason, fallback
        )
    outbox.insert_outbox(session, fallback_rows)
    return rerouted


def _reschedule(rows: Sequence[OutboxMessage], now: datetime, error: TransientError) -> None:
    wait = error.retry_after or backoff(max((r.attempts for r in rows), default=1))
    for row in rows:
        row.status = "pending"
        row.leased_until = None
        row.last_error = str(error)
        row.due_at = now + wait


def _fail(rows: Sequence[OutboxMessage], error: PermanentError) -> None:
    log.error("%d notices failed for good: %s", len(rows), error.code or error)
    for row in rows:
        row.status = "failed"
        row.leased_until = None
        row.last_error = f"{error.code}: {error}" if error.code else str(error)


def _auth_failed(session: Session, error: AuthError, now: datetime) -> None:
    log.error("Slack rejected the bot token (%s); delivery paused, nothing lost", error.code)
    outbox.set_health(session, "slack", False, f"Slack rejected the token: {error.code}", now)
