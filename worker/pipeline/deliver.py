"""Deliver: send due outbox rows to Slack, grouped per recipient, threaded per lead, paced per
channel, and never dropped.

One pass: find recipients with due rows; claim their rows; resolve each recipient to a Slack
target (a user id via ``users.lookupByEmail``, cached; or a channel); hold rows for a person
outside their working hours (their Slack time zone); plan posts with the renderer of each row's
delivery — notices as one list per recipient (news about a lead already named replies in its
thread), digests split to fit Slack's limits, ready-made reports as they are; then send them, at
most one message per second per channel while different channels interleave. Rows are marked
sent only after Slack accepted them. Transient errors reschedule (Retry-After or backoff);
rejected credentials stop the pass with every row still pending and turn health red; an unknown
rep or a broken channel re-routes the notice to the manager or the fallback channel, recorded on
the original row; anything else is recorded as failed. Every status change is an outbox
transition. It never evaluates leads.

Exactly-once holds except in one window: a sender killed after Slack accepted a message and
before its rows were marked sent. Those rows are sent again when the lease runs out (at most
one duplicate, and only then): Slack's API has no idempotency key that could close it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from worker.config import Agreement
from worker.errors import AuthError, PermanentError, TransientError
from worker.notices import OVERDUE, SNOOZABLE, Notice, NoticeKind
from worker.pipeline import away
from worker.pipeline.context import Context
from worker.pipeline.summary import DETAIL, Summary
from worker.pipeline.teammates import Rosters, team_rosters, teammates_of_leads
from worker.sla import RuleState
from worker.slack.messages import SlackMessage, Teammates, digest_parts, render_notices
from worker.slack.pacing import ChannelPacer
from worker.slack.sender import RecordingSender, SlackSender
from worker.store import acknowledgements, outbox, queries
from worker.store.db import UNREACHABLE, retrying, rolled_back, session_scope
from worker.store.leases import new_holder
from worker.store.models import OutboxRow
from worker.store.outbox import Delivery

log = logging.getLogger(__name__)

LEASE_FOR = timedelta(minutes=5)
#: News about more leads than this for one recipient in one pass goes out as one list instead
#: of a reply in each lead's thread.
MAX_THREAD_REPLIES = 3
MAX_BACKOFF = timedelta(hours=1)
#: Errors that mean "this channel cannot take messages": re-route to the fallback channel.
CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


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
    #: Parts of one digest share this key; after a failed part the rest wait with it.
    digest_key: int | None = None
    #: The most tries any of its rows has had (for the retry backoff).
    attempts: int = 1
    #: When it may go: the latest due time of its rows (a digest slot, working hours, …).
    due_at: datetime | None = None


@dataclass
class DeliverSummary(Summary):
    messages: int = 0
    rows_sent: int = 0
    rows_retrying: int = 0
    rows_failed: int = 0
    rows_rerouted: int = 0
    rows_held: int = 0
    rows_superseded: int = 0
    auth_failed: bool = False
    #: Every post Slack accepted, in order.
    posts: list[Post] = field(default_factory=list, metadata=DETAIL)

    def failure(self) -> str | None:
        if self.auth_failed:
            return "Slack rejected the bot token: delivery paused, every notice kept"
        return None


@dataclass
class Target:
    channel: str
    tz: str | None = None


class _Stop(Exception):
    """Credentials were rejected: end the pass, leave everything pending."""


def run(ctx: Context, now: datetime) -> DeliverSummary:
    """The stage: one delivery pass through the context's Slack client."""
    return deliver(ctx.slack, ctx.sessions, ctx.agreement, now, clock=ctx.clock, pacer=ctx.pacer)


def preview(ctx: Context, now: datetime) -> list[Post]:
    """What a pass at ``now`` would send: the same pass, through a sender that records instead
    of posting, in a transaction that is rolled back (``--dry-run``)."""
    with rolled_back(ctx.engine) as sessions:
        summary = deliver(
            RecordingSender(),
            sessions,
            ctx.agreement,
            now,
            pacer=ChannelPacer(sleep=lambda _: None),
        )
    return summary.posts


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> timedelta:
    """Exponential backoff with jitter, from 30 s, capped at an hour."""
    ceiling = min(timedelta(seconds=30) * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return timedelta(seconds=max(1.0, ceiling.total_seconds() * (0.5 + rng() / 2)))


def deliver(
    slack: SlackSender,
    sessions: Callable[[], Session],
    agreement: Agreement,
    now: datetime,
    *,
    lease_for: timedelta = LEASE_FOR,
    clock: Callable[[], datetime] | None = None,
    pacer: ChannelPacer | None = None,
) -> DeliverSummary:
    """One delivery pass (see the module docstring). ``clock`` tells the time while the pass
    goes on (claims are renewed from it); ``now`` is the instant the pass judges due rows by."""
    delivery = _DeliverPass(slack, sessions, agreement, now, lease_for, clock or (lambda: now))
    delivery.run(pacer or ChannelPacer())
    return delivery.summary


class _DeliverPass:
    """One pass's state: its holder name (every claim and transition is under it), its
    clock, and its summary."""

    def __init__(
        self,
        slack: SlackSender,
        sessions: Callable[[], Session],
        agreement: Agreement,
        now: datetime,
        lease_for: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.slack = slack
        self.sessions = sessions
        self.agreement = agreement
        self.now = now
        self.lease_for = lease_for
        self.clock = clock
        self.holder = new_holder()
        self.summary = DeliverSummary()
        #: Rows of the message Slack just accepted, until they are recorded as sent.
        self._accepted: list[int] = []
        #: Each team's active owners, for *Reassign* menus (read once, when first needed).
        self._rosters: Rosters | None = None

    def run(self, pacer: ChannelPacer) -> None:
        # Reminders of reps who are away go to their cover: re-routed before any is planned.
        try:
            away.before_delivery(
                self.slack,
                self.sessions,
                self.agreement,
                self.now,
                holder=self.holder,
                lease_for=self.lease_for,
            )
        except AuthError as e:
            with session_scope(self.sessions) as session:
                _auth_failed(session, e, self.now)
            self.summary.auth_failed = True
            return
        with session_scope(self.sessions) as session:
            recipients = outbox.recipients_due(session, self.now)
        try:
            self._run(recipients, pacer)
        except UNREACHABLE:
            # The database went away mid-pass: free this pass's claims as soon as it answers
            # again (not in five minutes), but those Slack accepted — they are not sent twice.
            try:
                retrying(
                    self.sessions,
                    lambda session: outbox.release_all(session, self.holder, self._accepted),
                    "giving back the notices this pass claimed",
                )
            except UNREACHABLE:
                log.error(
                    "could not give back claimed notices; they are due again in %s", self.lease_for
                )
            raise

    def _run(self, recipients: list[str], pacer: ChannelPacer) -> None:
        posts: list[Post] = []
        try:
            for recipient in recipients:
                posts += self._plan_recipient(recipient)
            failed_digests: dict[int, tuple[datetime, str]] = {}
            for post in pacer.order(posts):
                if post.digest_key in failed_digests:
                    # A part of this digest failed: the later parts wait with it.
                    due_at, error = failed_digests[post.digest_key]
                    self._reschedule(post.row_ids, due_at, error)
                    continue
                failure = self._send(post)
                if failure is not None and post.digest_key is not None:
                    failed_digests[post.digest_key] = failure
        except _Stop:
            self.summary.auth_failed = True
            claimed = [i for post in posts for i in post.row_ids]
            with session_scope(self.sessions) as session:
                self.summary.rows_retrying += outbox.release(session, claimed, self.holder)

    def _plan_recipient(self, recipient: str) -> list[Post]:
        summary, holder, now = self.summary, self.holder, self.now
        group_wait = self.agreement.config.notifications.group_wait
        with session_scope(self.sessions) as session:
            rows = outbox.claim(session, recipient, now, self.lease_for, group_wait, holder=holder)
            rows = _without_superseded(session, rows, holder, summary)
            if not rows:
                return []
            ids = [r.id for r in rows]
            try:
                target = _target_for(self.slack, session, self.agreement, recipient, now)
            except AuthError as e:
                # Record it and give the rows back in this transaction; the pass stops below,
                # once the transaction is committed.
                _auth_failed(session, e, now)
                summary.rows_retrying += outbox.release(session, ids, holder)
            except TransientError as e:
                due_at = now + _retry_wait(e, _attempts(rows))
                summary.rows_retrying += outbox.reschedule(
                    session, ids, holder, due_at=due_at, error=str(e)
                )
                return []
            except PermanentError as e:
                # users.lookupByEmail refused in a way we did not foresee (access_denied,
                # invalid_arguments…): this recipient's notices go to the next recipient;
                # everyone else's pass goes on.
                _reroute(
                    session, self.agreement, rows, holder, e.code or "lookup_failed", now, summary
                )
                return []
            else:
                if target is None:
                    _reroute(session, self.agreement, rows, holder, "users_not_found", now, summary)
                    return []
                rows = _hold_for_quiet_hours(
                    session, self.agreement, rows, holder, target, now, summary
                )
                return _plan_posts(
                    session, recipient, target, rows, now, self._teammates(session, rows)
                )
        raise _Stop

    def _teammates(self, session: Session, rows: Sequence[OutboxRow]) -> Teammates:
        """The *Reassign* menus' teammates of the leads whose lines carry one (a rep's
        reminder of a warning or breach, a digest's overdue line); the teams' rosters are
        read once a pass."""
        lead_ids = [
            r.lead_id
            for r in rows
            if (r.delivery == Delivery.DIRECT and r.kind in SNOOZABLE)
            or (r.delivery == Delivery.DIGEST and r.kind in OVERDUE)
        ]
        if not lead_ids:
            return {}
        if self._rosters is None:
            self._rosters = team_rosters(session, self.agreement)
        return teammates_of_leads(session, self.agreement, lead_ids, self._rosters)

    def _reschedule(self, ids: Sequence[int], due_at: datetime, error: str) -> None:
        with session_scope(self.sessions) as session:
            self.summary.rows_retrying += outbox.reschedule(
                session, ids, self.holder, due_at=due_at, error=error
            )

    def _still_held(self, post: Post) -> bool:
        """Renew the claim on the post's rows (a slow Slack can make a pass outlast its claims);
        False when another pass took any of them over after this pass's claim ran out. While
        less than half the claim has passed nobody can have taken it (a claim is taken only
        once it ran out), so a quick pass spends no round trip on it."""
        if self.clock() < self.now + self.lease_for / 2:
            return True
        with session_scope(self.sessions) as session:
            until = self.clock() + self.lease_for
            held = outbox.renew(session, post.row_ids, self.holder, until)
        if held < len(post.row_ids):
            log.warning(
                "%d notices to %s were taken over by another deliver pass; this pass skips them",
                len(post.row_ids) - held,
                post.recipient,
            )
            return False
        return True

    def _send(self, post: Post) -> tuple[datetime, str] | None:
        """Send one post and record the outcome on its rows; None when Slack accepted it,
        else when its rows are due again and why."""
        summary, holder, now = self.summary, self.holder, self.now
        if not self._still_held(post):
            return (now, "taken over by another pass")
        try:
            sent = self.slack.post_message(
                post.channel,
                post.message.text,
                blocks=post.message.blocks,
                thread_ts=post.thread_ts,
            )
        except AuthError as e:
            with session_scope(self.sessions) as session:
                _auth_failed(session, e, now)
            raise _Stop from None
        except TransientError as e:
            log.warning("sending to %s failed (%s); will retry", post.recipient, e)
            due_at = now + _retry_wait(e, post.attempts)
            self._reschedule(post.row_ids, due_at, str(e))
            return (due_at, str(e))
        except PermanentError as e:
            with session_scope(self.sessions) as session:
                if e.code in CHANNEL_ERRORS:
                    rows = outbox.rows_by_id(session, post.row_ids)
                    _reroute(session, self.agreement, rows, holder, e.code or "", now, summary)
                else:
                    log.error("%d notices failed for good: %s", len(post.row_ids), e.code or e)
                    error = f"{e.code}: {e}" if e.code else str(e)
                    summary.rows_failed += outbox.fail(session, post.row_ids, holder, error)
            return (now, str(e))
        summary.messages += 1
        summary.posts.append(post)
        self._accepted = list(post.row_ids)

        def record(session: Session) -> int:
            outbox.set_health(session, "slack", True, "", now)
            outbox.remember_threads(
                session, post.recipient, post.opens_threads_for, sent.channel, sent.ts, now
            )
            return outbox.mark_sent(
                session, post.row_ids, holder, channel=sent.channel, ts=sent.ts, now=now
            )

        # Slack has the message: recording it must outlast a short outage, or its rows would
        # be sent again once their claim ran out.
        summary.rows_sent += retrying(self.sessions, record, "recording a sent message")
        self._accepted = []
        return None


def _attempts(rows: Sequence[OutboxRow]) -> int:
    return max((r.attempts for r in rows), default=1)


# -- one renderer per delivery ------------------------------------------------------------------


def notices_of(rows: Sequence[OutboxRow], tz: str | None = None) -> list[Notice]:
    """The rows' notices, with deadlines shown in ``tz`` (the reader's own zone) when known."""
    notices = [Notice.from_payload(r.payload) for r in rows]
    return [replace(n, timezone=tz) for n in notices] if tz else notices


def _report_posts(
    session: Session,
    recipient: str,
    target: Target,
    rows: list[OutboxRow],
    now: datetime,
    teammates: Teammates,
) -> list[Post]:
    """A ready-made message per row, as it is."""
    return [
        Post(
            recipient,
            target.channel,
            SlackMessage.from_payload(r.payload),
            [r.id],
            attempts=r.attempts,
        )
        for r in rows
    ]


def _digest_posts(
    session: Session,
    recipient: str,
    target: Target,
    rows: list[OutboxRow],
    now: datetime,
    teammates: Teammates,
) -> list[Post]:
    """One digest, in as many parts as Slack's limits need; each part carries the rows of the
    leads it lists, so a part that fails never makes an earlier part go out again."""
    # Dated by its slot (the latest due time of its rows), not by when the pass ran: a preview
    # of tomorrow's 09:00 digest says 09:00, and a slot caught up late says which slot it is.
    at = min(now, max(r.due_at for r in rows))
    parts = digest_parts(notices_of(rows, target.tz), at=at, teammates=teammates)
    return [
        Post(
            recipient,
            target.channel,
            part.message,
            [rows[i].id for i in part.carries],
            digest_key=rows[0].id,
            attempts=_attempts(rows),
            # Later news about a lead to this manager ("done, late") replies under the part
            # that paged them about it.
            opens_threads_for=list(dict.fromkeys(rows[i].lead_id for i in part.carries)),
        )
        for part in parts
    ]


def _direct_posts(
    session: Session,
    recipient: str,
    target: Target,
    rows: list[OutboxRow],
    now: datetime,
    teammates: Teammates,
) -> list[Post]:
    """Leads new to this recipient in one list; news about a lead already named as a reply in
    the thread of the message that named it."""
    threads = outbox.threads_for(session, recipient, {r.lead_id for r in rows})
    fresh: list[OutboxRow] = []
    replies: dict[str, list[OutboxRow]] = {}
    for row in rows:
        if row.lead_id in threads:
            replies.setdefault(row.lead_id, []).append(row)
        else:
            fresh.append(row)
    if len(replies) > MAX_THREAD_REPLIES:
        # News about many leads at once (their daily repeats fell due together): one list,
        # as Alertmanager repeats a whole group, rather than a reply in each lead's thread.
        fresh = rows
        replies = {}

    def post(chosen: list[OutboxRow], **where: Any) -> Post:
        message = render_notices(notices_of(chosen, target.tz), teammates=teammates)
        ids = [r.id for r in chosen]
        return Post(recipient, target.channel, message, ids, attempts=_attempts(chosen), **where)

    posts: list[Post] = []
    if fresh:
        posts.append(post(fresh, opens_threads_for=list(dict.fromkeys(r.lead_id for r in fresh))))
    posts += [post(lead_rows, thread_ts=threads[lead]) for lead, lead_rows in replies.items()]
    return posts


_Planner = Callable[[Session, str, Target, list[OutboxRow], datetime, Teammates], list[Post]]

#: In this order: reports, then digests, then reminders.
_PLANNERS: dict[Delivery, _Planner] = {
    Delivery.REPORT: _report_posts,
    Delivery.DIGEST: _digest_posts,
    Delivery.DIRECT: _direct_posts,
}


def _plan_posts(
    session: Session,
    recipient: str,
    target: Target,
    rows: list[OutboxRow],
    now: datetime,
    teammates: Teammates,
) -> list[Post]:
    posts: list[Post] = []
    for delivery, planner in _PLANNERS.items():
        chosen = [r for r in rows if r.delivery == delivery]
        if chosen:
            planned = planner(session, recipient, target, chosen, now, teammates)
            due = {r.id: r.due_at for r in chosen}
            for post in planned:
                post.due_at = max(due[i] for i in post.row_ids)
            posts += planned
    return posts


def _retry_wait(error: TransientError, attempts: int) -> timedelta:
    return error.retry_after or backoff(attempts)


def _target_for(
    slack: SlackSender, session: Session, agreement: Agreement, recipient: str, now: datetime
) -> Target | None:
    """``email:x`` → the person's Slack user id (posting to it opens the DM), cached;
    ``channel:#x`` → ``#x``. None: Slack knows no such person."""
    kind, _, address = recipient.partition(":")
    if kind == "channel":
        return Target(address)
    ttl = agreement.config.notifications.user_cache_for
    cached = outbox.cached_slack_user(session, address, now, ttl)
    if cached is not None:
        return Target(cached.user_id, cached.tz) if cached.user_id else None
    user = slack.lookup_user_by_email(address)
    outbox.remember_slack_user(
        session,
        address,
        user.id if user else None,
        user.tz if user else None,
        now,
        name=user.name if user else None,
    )
    return Target(user.id, user.tz) if user else None


#: The finding states under which a notice of this kind is still true.
_STILL_TRUE = {
    NoticeKind.WARNING: {RuleState.WARNING},
    NoticeKind.BREACH: {RuleState.BREACHED},
    NoticeKind.ESCALATION: {RuleState.BREACHED},
}


def _without_superseded(
    session: Session, rows: list[OutboxRow], holder: str, summary: DeliverSummary
) -> list[OutboxRow]:
    """Drop the notices the lead outran while they waited (quiet hours, a weekend, a retry): a
    warning or an overdue notice for a rule that is met by now, and a "done, late" for a breach
    that was never announced; and a reminder of a breach someone acknowledged since it was
    written (an evaluate pass that read the acknowledgements just before the click). They are
    superseded, not sent: news that is no longer true is noise."""
    overdue = sorted({r.lead_id for r in rows if r.kind in OVERDUE})
    findings = queries.findings_for(
        session, sorted({r.lead_id for r in rows if r.kind in _STILL_TRUE})
    )
    acknowledged = acknowledgements.for_leads(session, overdue) if overdue else {}
    acked = [r for r in rows if r.kind in OVERDUE and _acknowledged(r, acknowledged)]
    if acked:
        summary.rows_superseded += outbox.supersede(
            session, [r.id for r in acked], holder, "acknowledged before it could be sent"
        )
        rows = [r for r in rows if r not in acked]
    stale = []
    for row in rows:
        if row.kind in _STILL_TRUE:
            finding = findings[row.lead_id].get(row.rule)
            if finding is not None and finding.state in _STILL_TRUE[NoticeKind(row.kind)]:
                continue
        elif row.kind == NoticeKind.RESOLVED:
            prefix = f"{row.lead_id}|{row.rule}|{row.payload.get('deadline_at')}|"
            if outbox.paged(session, prefix, OVERDUE):
                continue
        else:
            continue
        stale.append(row)
    if stale:
        summary.rows_superseded += outbox.supersede(
            session, [r.id for r in stale], holder, "no longer true when it could be sent"
        )
    return [r for r in rows if r not in stale]


def _acknowledged(row: OutboxRow, acknowledged: dict[str, set[acknowledgements.Breach]]) -> bool:
    breaches = acknowledged.get(row.lead_id)
    if not breaches:
        return False
    deadline = datetime.fromisoformat(str(row.payload.get("deadline_at")))
    return (row.rule, deadline) in breaches


def _hold_for_quiet_hours(
    session: Session,
    agreement: Agreement,
    rows: list[OutboxRow],
    holder: str,
    target: Target,
    now: datetime,
    summary: DeliverSummary,
) -> list[OutboxRow]:
    """Rows for a person outside their own working hours go back to wait for the opening;
    returns the rows that may go now.

    The team calendar already held them at evaluation; a person whose Slack profile is in
    another time zone gets the team's hours read in their own zone.
    """
    if not target.tz:
        return rows
    sendable = []
    for row in rows:
        opening = _opening_for(agreement, row, target.tz, now)
        if opening is None:
            sendable.append(row)
        else:
            summary.rows_held += outbox.reschedule(session, [row.id], holder, due_at=opening)
    return sendable


def _opening_for(agreement: Agreement, row: OutboxRow, tz: str, now: datetime) -> datetime | None:
    """When a reminder may reach a reader in zone ``tz``; None: now."""
    if row.delivery != Delivery.DIRECT:
        return None
    notice = Notice.from_payload(row.payload)
    if not notice.quiet or not notice.team:
        return None
    team = agreement.teams.get(notice.team)
    if team is None or team.calendar.timezone == tz:
        return None
    calendar = agreement.calendar_in_zone(notice.team, tz)
    return None if calendar.is_open(now) else calendar.next_open_at(now)


def _reroute(
    session: Session,
    agreement: Agreement,
    rows: Sequence[OutboxRow],
    holder: str,
    reason: str,
    now: datetime,
    summary: DeliverSummary,
) -> None:
    """Hand undeliverable rows to the next recipient: a rep → the team's manager; a channel →
    the fallback channel. A row nobody can take is failed."""
    for row in rows:
        fallback = _fallback_for(agreement, row)
        if fallback is None or fallback == row.recipient:
            log.error(
                "notice %s to %s undeliverable (%s), no fallback",
                row.dedup_key,
                row.recipient,
                reason,
            )
            summary.rows_failed += outbox.fail(
                session, [row.id], holder, f"{reason}: no fallback recipient"
            )
            continue
        log.warning(
            "notice to %s undeliverable (%s): re-routed to %s", row.recipient, reason, fallback
        )
        summary.rows_rerouted += outbox.reroute(session, row, holder, fallback, reason, now)


def _fallback_for(agreement: Agreement, row: OutboxRow) -> str | None:
    if row.recipient.startswith("channel:"):
        channel = agreement.config.notifications.fallback_channel
        return f"channel:{channel}" if channel else None
    team = agreement.teams.get(str(row.payload.get("team") or ""))
    return f"email:{team.manager.lower()}" if team and team.manager else None


def _auth_failed(session: Session, error: AuthError, now: datetime) -> None:
    log.error("Slack rejected the bot token (%s); delivery paused, nothing lost", error.code)
    outbox.set_health(session, "slack", False, f"Slack rejected the token: {error.code}", now)
