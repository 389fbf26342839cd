"""The *Reassign* menu of a rep's reminder and of a digest's overdue line, carried out: the lead
goes to the teammate chosen, in the CRM first.

``carry_out`` is what ``slack_actions.run`` does for a choice in the menu (``action_id``
``reassign``, the option's value ``<lead id>|<owner id>``, ``messages.reassign_value``). In
order, each step in its own transaction or call: decide (who chose, whether they may act on the
lead: its owner, their manager or an admin, ``slack_callers.access_to``; whether the new owner
is an active owner of the lead's team, any active owner for an admin; not the owner already);
write the owner in the CRM through the one CRM client (``update_lead``: the CRM moves its
owner-assigned date, where the engine starts the clocks); store the lead as the CRM has it now,
then sync and evaluate (``slack_actions.refresh``), so that findings and the outbox follow;
then the previous owner's pending reminders of the lead are superseded, the new owner is told
who handed them the lead and what is due, the previous owner is told when someone else chose.
``slack_actions.run`` audits the choice and updates the message in place. A choice refused,
or a write the CRM refuses, changes nothing but the audit, and the chooser alone is told.
It never writes the CRM without a person's choice.
"""

from __future__ import annotations

import logging
import time as time_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.errors import SlaWorkerError
from worker.notices import SNOOZABLE, Notice, NoticeKind, rule_title
from worker.pipeline.context import Context
from worker.pipeline.evaluate import lead_facts
from worker.pipeline.notifications import LeadFacts
from worker.pipeline.recycle import OWNER_PROPERTY
from worker.pipeline.slack_actions import (
    ActionAnswer,
    BlockAction,
    Shown,
    lead_to_act_on,
    refresh,
)
from worker.pipeline.slack_callers import Caller, slack_client
from worker.sla import RuleState
from worker.slack.messages import (
    SlackMessage,
    clip,
    escape,
    format_local,
    handed_over_message,
    parse_reassign_value,
    reassignment_note,
    taken_over_message,
    with_reassignment,
)
from worker.store import mirror, outbox, queries
from worker.store.db import session_scope
from worker.store.models import Finding, Lead, Owner
from worker.store.outbox import Delivery, Envelope

log = logging.getLogger(__name__)

#: The rule a handover message's outbox row names (it is about the lead, not one rule).
RULE = "reassign"
_OPEN = (RuleState.PENDING.value, RuleState.WARNING.value, RuleState.BREACHED.value)
_UNKNOWN = "The SLA worker does not know this menu (is the message very old?): nothing changed."


@dataclass(frozen=True)
class _Person:
    """An owner as the store has them."""

    owner_id: str
    name: str
    email: str | None


@dataclass(frozen=True)
class _Reassignment:
    """A choice that may go ahead: the lead, from whom, to whom, chosen by whom."""

    lead_id: str
    lead_name: str
    before: _Person | None
    after: _Person
    by: Caller


def carry_out(
    ctx: Context,
    now: datetime,
    action: BlockAction,
    caller: Caller,
    *,
    sleep: Callable[[float], None] = time_module.sleep,
) -> tuple[ActionAnswer, datetime]:
    """Reassign the lead the chosen option names (see the module docstring); the answer for
    the audit and Slack, and the time the work ended (after the refresh)."""
    chosen = parse_reassign_value(action.value)
    if chosen is None:
        return ActionAnswer("not found: not a reassignment", reply=_UNKNOWN), now
    lead_id, owner_id = chosen
    with session_scope(ctx.sessions) as session:
        decided = _decide(session, ctx, caller, lead_id, owner_id)
    if isinstance(decided, ActionAnswer):
        return decided, now
    try:
        ctx.crm.update_lead(lead_id, {OWNER_PROPERTY: owner_id})
    except SlaWorkerError as e:
        log.warning("could not reassign lead %s in the CRM: %s", lead_id, e)
        text = (
            f"Could not reassign *{escape(clip(decided.lead_name))}*: the CRM refused the "
            f"write ({escape(str(e))}). Nothing changed; try again in a minute."
        )
        return ActionAnswer(f"failed: CRM write refused: {e}", lead_id, text), now
    _store_as_the_crm_has_it(ctx, now, lead_id)
    now = refresh(ctx, sleep=sleep)
    people = [p.email for p in (decided.before, decided.after) if p is not None and p.email]
    zones = {email: _zone_of(ctx, now, email) for email in people}
    with session_scope(ctx.sessions) as session:
        return _follow_up(session, ctx, now, decided, zones), now


def _decide(
    session: Session, ctx: Context, caller: Caller, lead_id: str, owner_id: str
) -> _Reassignment | ActionAnswer:
    bundle = lead_to_act_on(session, ctx, caller, lead_id, "reassign")
    if isinstance(bundle, ActionAnswer):
        return bundle
    assert caller.email is not None  # checked by lead_to_act_on
    lead_name = bundle.lead_name
    new = session.get(Owner, owner_id)
    if new is None or new.archived:
        text = f"Owner {escape(owner_id)} is not an active CRM owner: nothing changed."
        return ActionAnswer(f"refused: {owner_id[:64]} is not an active owner", lead_id, text)
    after = _Person(new.id, new.display_name, new.email)
    if bundle.lead.owner_id == owner_id:
        text = (
            f"*{escape(clip(lead_name))}* is {escape(after.name)}'s lead already: nothing changed."
        )
        return ActionAnswer(f"already owned by {owner_id}", lead_id, text)
    old = bundle.owner
    before = _Person(old.id, bundle.owner_name, old.email) if old is not None else None
    agreement = ctx.agreement
    team = agreement.team_for(old.email if old else None, old.teams if old else [])
    new_team = agreement.team_for(new.email, new.teams)
    admins = {a.lower() for a in agreement.config.slack.admins}
    if new_team.name != team.name and caller.email.lower() not in admins:
        text = (
            f"{escape(after.name)} is not in team {escape(team.name)}, the team of "
            f"*{escape(clip(lead_name))}*: choose a teammate (an SLA admin may choose anyone). "
            "Nothing changed."
        )
        return ActionAnswer(f"refused: {owner_id} is in team {new_team.name}", lead_id, text)
    return _Reassignment(lead_id, lead_name, before, after, caller)


def _store_as_the_crm_has_it(ctx: Context, now: datetime, lead_id: str) -> None:
    """Read the lead back and store it: CRM search (which sync reads) may not show the new
    owner for a few moments (API-FACTS: search indexing lag); a record read does."""
    try:
        lead = ctx.crm.get_lead(lead_id)
    except SlaWorkerError as e:
        log.warning("could not read lead %s back after reassigning it: %s", lead_id, e)
        return
    if lead is not None:
        with session_scope(ctx.sessions) as session:
            mirror.upsert_lead(session, lead, now)


def _follow_up(
    session: Session,
    ctx: Context,
    now: datetime,
    done: _Reassignment,
    zones: Mapping[str, str | None],
) -> ActionAnswer:
    """After the CRM write and the refresh: the previous owner's reminders superseded, the
    people told, the answer with what the clicked message is to show."""
    by = done.by.shown_name
    stored = session.scalar(select(Lead.owner_id).where(Lead.id == done.lead_id))
    outcome = f"reassigned from {_who(done.before)} to {_who(done.after)}"
    if stored != done.after.owner_id:
        outcome += f"; the store still has owner {stored} (the next sync brings the change)"
    bundle = queries.load_bundles(session, [done.lead_id])[0]
    facts = lead_facts(bundle, ctx.agreement.config.crm.record_url)
    owner = bundle.owner
    team = ctx.agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
    envelopes: list[Envelope] = []
    before = done.before
    if before is not None and before.email:
        cancelled = outbox.cancel_reminders_to(
            session,
            done.lead_id,
            f"email:{before.email}",
            SNOOZABLE,
            f"reassigned to {done.after.name} by {by}",
        )
        outcome += f"; {cancelled} pending reminders to {before.email} superseded"
        if (done.by.email or "").lower() != before.email.lower():
            zone = zones.get(before.email) or team.calendar.timezone
            lead = _lead_notice(facts, team.name, zone, now)
            message = taken_over_message(lead, by=by, new_owner=done.after.name, at=now)
            envelopes.append(_dm(done.lead_id, before.email, message, now))
    after = done.after
    if after.email and (done.by.email or "").lower() != after.email.lower():
        zone = zones.get(after.email) or team.calendar.timezone
        lead = _lead_notice(facts, team.name, zone, now)
        message = handed_over_message(
            lead,
            by=by,
            previous_owner=_previous(before, done.by),
            at=now,
            deadline=_next_deadline(session, done.lead_id, zone),
        )
        envelopes.append(_dm(done.lead_id, after.email, message, now))
    told = outbox.enqueue(session, envelopes, now)
    if told:
        outcome += f"; {told} told"
    shown = Shown(lambda tz: reassignment_note(after.name, by, now, tz), with_reassignment)
    return ActionAnswer(outcome, done.lead_id, shown=shown)


def _previous(before: _Person | None, by: Caller) -> str | None:
    """The previous owner's name for the new owner's DM; None when they chose themselves."""
    if before is None:
        return None
    if before.email and (by.email or "").lower() == before.email.lower():
        return None
    return before.name


def _who(person: _Person | None) -> str:
    return f"{person.name} ({person.owner_id})" if person is not None else "nobody"


def _zone_of(ctx: Context, now: datetime, email: str) -> str | None:
    """The person's Slack time zone (their DM shows times in it): from the Slack user table
    while fresh, else ``users.lookupByEmail``, remembered as deliver remembers it. None: not
    known (Slack does not know them, or did not answer)."""
    ttl = ctx.agreement.config.notifications.user_cache_for
    with session_scope(ctx.sessions) as session:
        cached = outbox.cached_slack_user(session, email, now, ttl)
        if cached is not None:
            return cached.tz
    try:
        user = slack_client(ctx).lookup_user_by_email(email)
    except SlaWorkerError as e:
        log.warning("could not look up the Slack user of %s: %s", email, e)
        return None
    with session_scope(ctx.sessions) as session:
        outbox.remember_slack_user(
            session,
            email,
            user.id if user else None,
            user.tz if user else None,
            now,
            name=user.name if user else None,
        )
    return user.tz if user else None


def _lead_notice(facts: LeadFacts, team: str, timezone: str, now: datetime) -> Notice:
    """The lead's name, company and link, as the message builders take them."""
    return Notice(
        kind=NoticeKind.REPORT,
        rule=RULE,
        lead_id=facts.lead_id,
        lead_name=facts.lead_name,
        company=facts.company,
        priority=facts.priority,
        record_url=facts.record_url,
        deadline_at=now,
        detail="",
        level=0,
        policy="",
        rep_name=facts.rep_name,
        timezone=timezone,
        team=team,
    )


def _next_deadline(session: Session, lead_id: str, timezone: str) -> str | None:
    """What is due next on the lead, in words: its earliest open deadline."""
    findings = session.scalars(
        select(Finding).where(
            Finding.lead_id == lead_id,
            Finding.state.in_(_OPEN),
            Finding.deadline_at.is_not(None),
        )
    ).all()
    if not findings:
        return None
    first = min(findings, key=lambda f: (f.deadline_at, f.rule))
    assert first.deadline_at is not None
    when = format_local(first.deadline_at, timezone)
    if first.state == RuleState.BREACHED.value:
        return f"{rule_title(first.rule)} was due {when}: overdue"
    return f"{rule_title(first.rule)} due {when}"


def _dm(lead_id: str, email: str, message: SlackMessage, now: datetime) -> Envelope:
    """A ready-made DM (delivered as it is, like a report), keyed by the lead and instant."""
    recipient = f"email:{email}"
    return Envelope(
        dedup_key=f"{lead_id}|{RULE}|{now.isoformat()}|{recipient}",
        kind=NoticeKind.REPORT,
        lead_id=lead_id,
        rule=RULE,
        level=0,
        recipient=recipient,
        delivery=Delivery.REPORT,
        payload=message.to_payload(),
        due_at=now,
    )
