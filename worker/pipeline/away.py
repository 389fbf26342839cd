"""Reps who are away: who is (``/sla away``, a Slack status matching ``away.markers``, the
config's ``away.reps``), their reminders handed to the team's cover, the manager's warning
before their leads breach, and the ``/sla away`` / ``/sla back`` commands.

The deliver stage calls :func:`before_delivery` at the start of each pass: that is the one
place reminders are re-routed. A rep reminder (a direct level-0 row) due to an away rep is
handed to the cover with ``outbox.reroute`` (the rep's row is marked rerouted, a copy goes to
the cover, saying whom it covers for): the rep's dedup key stays in the outbox, so a rep who
comes back mid-breach is not sent the same reminder again. It never changes a lead, in the
store or in the CRM: leads are reassigned only by a person's click.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker import availability
from worker.availability import AwayPeriod, BadUntil, parse_until, until_words
from worker.config import Agreement, Team
from worker.errors import AuthError, SlaWorkerError
from worker.notices import NoticeKind
from worker.pipeline.context import Context
from worker.pipeline.slack_callers import Caller
from worker.pipeline.teammates import teammates_of
from worker.sla import RuleState
from worker.slack.away import LeadAtRisk, away_reply, away_warning, back_reply
from worker.slack.client import SlackUser
from worker.slack.messages import escape
from worker.slack.sender import SlackSender
from worker.store import away, outbox
from worker.store.db import session_scope
from worker.store.models import Finding, Lead, Owner
from worker.store.outbox import Delivery, Envelope

log = logging.getLogger(__name__)

#: The reason a covered reminder's copy carries (``away until Thu 24 Dec``); messages say
#: "<rep> is away until … — you are covering" for it.
AWAY_REASON = "away"


@runtime_checkable
class _UserReader(Protocol):
    """Who a Slack user id is, with their status (``SlackClient.user_by_id``)."""

    def user_by_id(self, user_id: str) -> SlackUser | None: ...


@dataclass
class Availability:
    """Who is away at ``now``: one object per pass; each person is looked up once."""

    agreement: Agreement
    slack: SlackSender | None
    now: datetime
    _known: dict[str, AwayPeriod | None] = field(default_factory=dict)

    def period_of(self, session: Session, email: str) -> AwayPeriod | None:
        """The away period of this person in force now; None: they are here."""
        key = email.lower()
        if key not in self._known:
            self._read_status(session, key)
            periods = away.running(session, [key], self.now)
            periods += availability.config_periods(
                self.agreement.config.away,
                key,
                team_of(session, self.agreement, key).calendar.timezone,
            )
            self._known[key] = availability.current(periods, self.now)
        return self._known[key]

    def cover_for(self, session: Session, team: Team, email: str) -> str | None:
        """Who takes an away rep's reminders: the team's cover unless away too, else the
        manager (away or not: somebody must hear); None when that is the rep themself."""
        for candidate in (team.cover, team.manager):
            if not candidate or candidate.lower() == email.lower():
                continue
            if candidate == team.cover and self.period_of(session, candidate) is not None:
                continue
            return candidate.lower()
        return None

    def timezone_of(self, session: Session, email: str) -> str | None:
        """The person's Slack time zone (looked up once, remembered as deliver does); None:
        not known."""
        ttl = self.agreement.config.notifications.user_cache_for
        cached = outbox.cached_slack_user(session, email, self.now, ttl)
        if cached is not None:
            return cached.tz
        if self.slack is None:
            return None
        try:
            user = self._lookup(session, email)
        except AuthError:
            raise
        except SlaWorkerError as e:
            log.warning("could not look up %s in Slack: %s", email, e)
            return None
        return user.tz if user else None

    def _read_status(self, session: Session, email: str) -> None:
        """Read the person's Slack status unless a fresh read is cached; note what it says
        (a status period opened, moved or ended). Slack not answering: as last read."""
        config = self.agreement.config
        if away.cached_status(session, email, self.now, config.away.status_cache_for):
            return
        if self.slack is None:
            return
        try:
            user = self._slack_user(session, email)
        except AuthError:
            raise  # the token is bad: the pass stops (deliver records it)
        except SlaWorkerError as e:
            log.warning("could not read the Slack status of %s: %s", email, e)
            return
        emoji = user.status_emoji if user else ""
        text = user.status_text if user else ""
        expires_at = user.status_expires_at if user else None
        if expires_at is not None and expires_at <= self.now:
            emoji, text = "", ""  # Slack clears an expired status itself; it may lag
        away.remember_status(session, email, emoji, text, expires_at, self.now)
        marker = availability.status_marks_away(emoji, text, config.away.markers)
        shown = " ".join(part for part in (emoji, text) if part)
        away.note_status(session, email, marker, expires_at, shown, self.now)

    def _slack_user(self, session: Session, email: str) -> SlackUser | None:
        """The person's Slack profile: ``users.info`` for a known user id, else the lookup by
        e-mail (which returns the same profile)."""
        assert self.slack is not None
        ttl = self.agreement.config.notifications.user_cache_for
        cached = outbox.cached_slack_user(session, email, self.now, ttl)
        if cached is not None and isinstance(self.slack, _UserReader):
            return self.slack.user_by_id(cached.user_id) if cached.user_id else None
        return self._lookup(session, email)

    def _lookup(self, session: Session, email: str) -> SlackUser | None:
        """``users.lookupByEmail``, remembered in the Slack user table (deliver reads it)."""
        assert self.slack is not None
        user = self.slack.lookup_user_by_email(email)
        outbox.remember_slack_user(
            session,
            email,
            user.id if user else None,
            user.tz if user else None,
            self.now,
            name=user.name if user else None,
        )
        return user


def team_of(session: Session, agreement: Agreement, email: str) -> Team:
    """The team of the owner with this e-mail (the first team when none is)."""
    owner = session.scalars(select(Owner).where(func.lower(Owner.email) == email.lower())).first()
    return agreement.team_for(email, owner.teams if owner else [])


# -- deliver's first step ---------------------------------------------------------------------


def before_delivery(
    slack: SlackSender,
    sessions: Callable[[], Session],
    agreement: Agreement,
    now: datetime,
    *,
    holder: str,
    lease_for: timedelta,
) -> tuple[int, int]:
    """Hand away reps' due reminders to their covers, then warn managers about away reps'
    leads that fall due before they are back: (reminders handed over, warnings queued)."""
    present = Availability(agreement, slack, now)
    handed = hand_over(present, sessions, now, holder=holder, lease_for=lease_for)
    warned = warn_managers(present, sessions, now)
    return handed, warned


def hand_over(
    present: Availability,
    sessions: Callable[[], Session],
    now: datetime,
    *,
    holder: str,
    lease_for: timedelta,
) -> int:
    """Re-route the due rep reminders (direct, level 0) of everyone away to their cover."""
    agreement = present.agreement
    with session_scope(sessions) as session:
        people = [
            r.removeprefix("email:")
            for r in outbox.recipients_due(session, now)
            if r.startswith("email:")
        ]
    handed = 0
    group_wait = agreement.config.notifications.group_wait
    for email in people:
        with session_scope(sessions) as session:
            period = present.period_of(session, email)
            if period is None:
                continue
            rows = outbox.claim(
                session,
                f"email:{email}",
                now,
                lease_for,
                group_wait,
                holder=holder,
                delivery=Delivery.DIRECT,
                level=0,
            )
            for row in rows:
                team = agreement.teams.get(str(row.payload.get("team") or "")) or team_of(
                    session, agreement, email
                )
                cover = present.cover_for(session, team, email)
                if cover is None:
                    outbox.release(session, [row.id], holder)
                    continue
                reason = f"{AWAY_REASON} {until_words(period.until, team.calendar.timezone)}"
                handed += outbox.reroute(session, row, holder, f"email:{cover}", reason, now)
    if handed:
        log.info("%d reminders of away reps handed to their covers", handed)
    return handed


def warn_managers(present: Availability, sessions: Callable[[], Session], now: datetime) -> int:
    """One warning to the manager per away rep, listing the rep's leads in warning (their
    deadline is near) that fall due before the rep is back; a lead is named once per away
    period, so a later warning lists only leads that came due since."""
    agreement = present.agreement
    with session_scope(sessions) as session:
        # Only the people known to be away are looked at (a rep's Slack status was read when
        # their own warning came due, in hand_over, just before): not every open warning.
        emails = {p.email for p in away.running(session, None, now)}
        emails |= {entry.email.lower() for entry in agreement.config.away.reps}
        by_owner: dict[str, list[tuple[Finding, Lead, Owner]]] = {}
        if emails:
            found = session.execute(
                select(Finding, Lead, Owner)
                .join(Lead, Lead.owner_id == Owner.id)
                .join(Finding, Finding.lead_id == Lead.id)
                .where(
                    func.lower(Owner.email).in_(sorted(emails)),
                    Finding.state == RuleState.WARNING.value,
                    Finding.deadline_at > now,
                    Lead.archived.is_(False),
                )
                .order_by(Finding.deadline_at)
            ).all()
            for finding, lead, owner in found:
                by_owner.setdefault(str(owner.email).lower(), []).append((finding, lead, owner))
    queued = 0
    record_url = agreement.config.crm.record_url
    for email, items in by_owner.items():
        with session_scope(sessions) as session:
            period = present.period_of(session, email)
            owner = items[0][2]
            team = agreement.team_for(email, owner.teams)
            manager = team.manager
            if period is None or manager is None or manager.lower() == email:
                continue
            at_risk: dict[str, LeadAtRisk] = {}
            for finding, lead, _ in items:
                due = finding.deadline_at
                if due is None or (period.until is not None and due >= period.until):
                    continue
                if lead.id not in at_risk:
                    at_risk[lead.id] = LeadAtRisk(
                        lead.id,
                        lead.display_name,
                        lead.company,
                        record_url.replace("{id}", lead.id) if record_url else None,
                        finding.rule,
                        due,
                    )
            new = [
                lead_id
                for lead_id in at_risk
                if away.note_warned(session, period.key, email, lead_id, now)
            ]
            if not new:
                continue
            tz = present.timezone_of(session, manager) or team.calendar.timezone
            message = away_warning(
                owner.display_name,
                until_words(period.until, team.calendar.timezone),
                present.cover_for(session, team, email),
                [at_risk[i] for i in new],
                tz,
                teammates=teammates_of(session, agreement, owner.id)[1],
            )
            digest = hashlib.sha256(",".join(sorted(new)).encode()).hexdigest()[:16]
            envelope = Envelope(
                dedup_key=f"away-warning|{period.key}|{email}|{digest}",
                kind=NoticeKind.REPORT,
                lead_id=new[0],
                rule="away_warning",
                level=0,
                recipient=f"email:{manager.lower()}",
                delivery=Delivery.REPORT,
                payload=message.to_payload(),
                due_at=now,
            )
            queued += outbox.enqueue(session, [envelope], now)
    return queued


# -- /sla away, /sla back, /sla mine -----------------------------------------------------------


def away_answer(ctx: Context, now: datetime, caller: Caller, arguments: str) -> tuple[str, str]:
    """``/sla away <until>``: (the answer, the audit's outcome)."""
    assert caller.email is not None  # the command refuses callers without one
    agreement = ctx.agreement
    with session_scope(ctx.sessions) as session:
        team = team_of(session, agreement, caller.email)
        tz = team.calendar.timezone
        try:
            until = parse_until(arguments, now, tz)
        except BadUntil as e:
            text = (
                f"{escape(str(e))}\n\n`/sla away <until>` takes {availability.UNTIL_HINT}; "
                f"a date or a weekday means the start of that day ({tz}), when you are back."
            )
            return text, "usage: bad until"
        away.go_away(session, caller.email, until, caller.email, now)
        cover = Availability(agreement, None, now).cover_for(session, team, caller.email)
    words = until_words(until, tz)
    return away_reply(words, cover), f"away until {until.isoformat()}"


def back_answer(ctx: Context, now: datetime, caller: Caller, arguments: str) -> tuple[str, str]:
    """``/sla back``: (the answer, the audit's outcome)."""
    assert caller.email is not None
    with session_scope(ctx.sessions) as session:
        ended = away.come_back(session, caller.email, now)
        still = Availability(ctx.agreement, None, now).period_of(session, caller.email)
    what = None
    if still is not None:
        what = "your Slack status" if still.source == availability.SLACK_STATUS else "the config"
    return back_reply(ended, what), f"back: {ended} ended" + (
        f"; still away by {what}" if what else ""
    )


def away_note(ctx: Context, now: datetime, email: str, timezone: str) -> str | None:
    """``You are away until …`` for ``/sla mine`` when the caller is; None when not."""
    with session_scope(ctx.sessions) as session:
        # What is known (no Slack call: the command answers from the store and the config).
        period = Availability(ctx.agreement, None, now).period_of(session, email)
        if period is None:
            return None
        cover = Availability(ctx.agreement, None, now).cover_for(
            session, team_of(session, ctx.agreement, email), email
        )
    until = until_words(period.until, timezone)
    return f":palm_tree: You are away {until}: your reminders go to {cover or 'your manager'}."


def explain_lines(
    session: Session, agreement: Agreement, email: str, since: datetime, timezone: str
) -> list[tuple[datetime, str]]:
    """The owner's away periods since ``since`` (stored and configured), for ``explain``."""
    periods = away.of_person(session, email, since)
    periods += [
        p
        for p in availability.config_periods(agreement.config.away, email, timezone)
        if p.until is None or p.until > since
    ]

    def source(period: AwayPeriod) -> str:
        if period.source == availability.COMMAND:
            return f"/sla away by {period.said_by}"
        return period.said_by  # the Slack status as read, or the config entry

    return [
        (p.from_at, f"owner {email} away {until_words(p.until, timezone)} ({source(p)})")
        for p in sorted(periods, key=lambda p: p.from_at)
    ]
