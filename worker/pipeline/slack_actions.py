"""Buttons clicked in Slack, carried out: the *Acknowledge* button of a manager's digest line,
the *Snooze* and *Logged a touch* buttons of a rep's reminder.

``run(ctx, now, action)`` is what the Celery task ``worker.tasks.slack_action`` calls once
``sla-worker web`` has acknowledged the click (tests call it without a broker). Acknowledging
a breach (lead, rule, breached deadline) stops it like a PagerDuty acknowledgement: no repeat
and no next escalation level is sent (evaluate drafts none, deliver drops any written before).
Snoozing a breach or warning holds back the rep's own reminders of it (level 0) until a chosen
time, bounded by ``slack.max_snooze``, when one reminder returns; the escalation ladder above
the rep goes on as scheduled. *Logged a touch* runs sync and evaluate now (waiting a bounded
time for a pass another worker runs) and says whether the CRM has the touch.

One transaction decides and records: who clicked (``slack_callers.identify``), whether they
may act on the lead (the rule of ``worker.permissions``, as for ``/sla``), whether the breach is
the lead's open one; then what the button does (:data:`_BUTTONS`, by ``action_id``) and the
audit row. Then, to Slack: the clicked message is updated in place (``chat.update``) to show
what was done, and anything else is answered to the clicker alone through the payload's
``response_url``. A refusal changes nothing but the audit. A choice in the *Reassign* menu
(:data:`REASSIGN`) is decided and carried out by ``slack_reassign`` (it writes the CRM, so
outside these transactions), then audited and shown here the same way.
"""

from __future__ import annotations

import logging
import time as time_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from worker.durations import format_duration
from worker.errors import SlaWorkerError
from worker.notices import OVERDUE, SNOOZABLE, BreachRef, Notice, NoticeKind, rule_title
from worker.pipeline.context import Context
from worker.pipeline.evaluate import lead_facts
from worker.pipeline.notifications import resolve_recipient
from worker.pipeline.slack_callers import Caller, SlackDirectory, access_to, identify, slack_client
from worker.pipeline.timing import direct_due_at
from worker.sla import BusinessCalendar, RuleState
from worker.slack import replies
from worker.slack.approvals import APPROVAL_BUTTONS
from worker.slack.messages import (
    ACKNOWLEDGE,
    REASSIGN,
    SNOOZE_1H,
    SNOOZE_TOMORROW,
    TOUCHED,
    acknowledgement_note,
    escape,
    format_local,
    snooze_note,
    touch_found_note,
    with_acknowledgement,
    with_reminder_note,
)
from worker.slack.response_url import reply_ephemeral
from worker.store import acknowledgements, outbox, queries, snoozes
from worker.store.actions import note_reply_failed, record_action
from worker.store.db import session_scope
from worker.store.models import Acknowledgement, Finding
from worker.store.outbox import Delivery, Envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockAction:
    """What the worker keeps of a ``block_actions`` payload (docs.slack.dev/reference/
    interaction-payloads/block_actions-payload): who clicked which button, with what value,
    on which message (its conversation and ``ts``, its text and blocks as Slack holds them),
    and where to answer them alone."""

    user_id: str
    action_id: str
    value: str
    response_url: str
    channel_id: str = ""
    message_ts: str = ""
    message_text: str = ""
    message_blocks: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> BlockAction:
        """The first action of the payload (a click is one action)."""
        actions = payload.get("actions") or [{}]
        action = actions[0] if isinstance(actions[0], Mapping) else {}
        container = payload.get("container") or {}
        message = payload.get("message") or {}
        channel = payload.get("channel") or {}
        blocks = message.get("blocks")
        # A menu's choice (the *Reassign* static_select) is its selected option's value.
        selected = action.get("selected_option") or {}
        value = action.get("value") or (
            selected.get("value") if isinstance(selected, Mapping) else ""
        )
        return cls(
            user_id=str((payload.get("user") or {}).get("id") or ""),
            action_id=str(action.get("action_id") or ""),
            value=str(value or ""),
            response_url=str(payload.get("response_url") or ""),
            channel_id=str(container.get("channel_id") or channel.get("id") or ""),
            message_ts=str(container.get("message_ts") or message.get("ts") or ""),
            message_text=str(message.get("text") or ""),
            message_blocks=[dict(b) for b in blocks] if isinstance(blocks, list) else [],
        )

    def as_task_kwargs(self) -> dict[str, Any]:
        """The task's arguments (JSON for the broker)."""
        return asdict(self)


#: A message's blocks with the controls of one breach (a button's value) replaced by a note;
#: None when the message has no such control (``messages.with_acknowledgement``, …).
Marker = Callable[[Sequence[Mapping[str, Any]], str, str], list[dict[str, Any]] | None]


@dataclass(frozen=True)
class Shown:
    """What the clicked message is to show in place of the clicked control: the note (given
    the time zone it is read in) and how it goes into the message."""

    note: Callable[[str], str]
    into: Marker


@dataclass(frozen=True)
class ActionAnswer:
    """What came of a click: the audit's outcome, the reply to the clicker (None: the updated
    message says it all), and what the clicked message is to show."""

    outcome: str
    lead_id: str | None = None
    reply: str | None = None
    #: What the clicked line is to show (who acknowledged, until when snoozed); None: leave it.
    shown: Shown | None = None

    def as_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, "lead_id": self.lead_id}


class MessageUpdater(Protocol):
    """Replaces a message in place (``SlackClient.update_message``: ``chat.update``)."""

    def update_message(
        self,
        channel: str,
        ts: str,
        text: str,
        *,
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> None: ...


#: Posts ``text`` to a ``response_url`` for the clicker only.
Reply = Callable[[str, str], None]


def reply_to_click(response_url: str, text: str) -> None:
    """To the clicker alone, beside the message they clicked (which stays)."""
    reply_ephemeral(response_url, text, beside_message=True)


def run(
    ctx: Context,
    now: datetime,
    action: BlockAction,
    *,
    directory: SlackDirectory | None = None,
    updater: MessageUpdater | None = None,
    reply: Reply = reply_to_click,
    sleep: Callable[[float], None] = time_module.sleep,
) -> ActionAnswer:
    """Carry out ``action`` for its clicker, audit it, and show the outcome: the message
    updated in place, or an answer to the clicker alone. A reply Slack refuses is noted in
    the audit and raised (the clicker saw nothing; the task is recorded as failed)."""
    caller = identify(ctx, now, action.user_id, directory or slack_client(ctx))
    if action.action_id in APPROVAL_BUTTONS:
        from worker.pipeline import recycle_decisions  # it builds on this module

        return recycle_decisions.on_click(
            ctx, now, action, caller, updater=updater or slack_client(ctx), reply=reply
        )
    decided: ActionAnswer | None = None
    if action.action_id == REASSIGN:
        from worker.pipeline import slack_reassign  # it builds on this module

        # Decides, writes the CRM and refreshes in transactions of its own.
        decided, now = slack_reassign.carry_out(ctx, now, action, caller, sleep=sleep)
    if action.action_id == TOUCHED:
        with session_scope(ctx.sessions) as session:
            allowed = isinstance(_click_of(session, ctx, now, action, caller), _Click)
        if allowed:  # outside the transaction: the stages write in their own
            now = refresh(ctx, sleep=sleep)
    with session_scope(ctx.sessions) as session:
        answer = decided or _carry_out(session, ctx, now, action, caller)
        audit_id = record_action(
            session,
            at=now,
            slack_user_id=action.user_id,
            email=caller.email,
            action=f"{action.action_id} {action.value}".strip(),
            lead_id=answer.lead_id,
            outcome=answer.outcome,
        )
        tz = caller.tz or _zone_of_lead(session, ctx, answer.lead_id)
    text = answer.reply
    if answer.shown is not None:
        note = answer.shown.note(tz)
        try:
            _show_in_message(updater or slack_client(ctx), action, answer.shown.into, note)
        except SlaWorkerError as e:
            log.warning("could not update the message %s: %s", action.message_ts, e)
            with session_scope(ctx.sessions) as session:
                note_reply_failed(session, audit_id, f"message not updated: {e}")
            text = (
                text or f"{note.rstrip('.')}. (The message could not be updated: {escape(str(e))}.)"
            )
    if text is not None:
        try:
            reply(action.response_url, text)
        except SlaWorkerError as e:
            with session_scope(ctx.sessions) as session:
                note_reply_failed(session, audit_id, str(e))
            raise
    return answer


def _show_in_message(updater: MessageUpdater, action: BlockAction, into: Marker, note: str) -> None:
    """The clicked message with the breach's controls replaced by ``note`` (``chat.update``,
    same text); nothing when the message has no such control any more."""
    if not action.channel_id or not action.message_ts:
        return
    blocks = into(action.message_blocks, action.value, note)
    if blocks is None:
        return
    updater.update_message(
        action.channel_id, action.message_ts, action.message_text or note, blocks=blocks
    )


def _zone_of_lead(session: Session, ctx: Context, lead_id: str | None) -> str:
    """The time zone of the lead's team (the first team's for no lead)."""
    agreement = ctx.agreement
    bundles = queries.load_bundles(session, [lead_id]) if lead_id else []
    owner = bundles[0].owner if bundles else None
    team = agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
    return team.calendar.timezone


# -- what a click does --------------------------------------------------------------------------


def _carry_out(
    session: Session, ctx: Context, now: datetime, action: BlockAction, caller: Caller
) -> ActionAnswer:
    """What every button shares (a breach it names, a lead in the store, a clicker who may
    act on it), then what this one does."""
    click = _click_of(session, ctx, now, action, caller)
    if isinstance(click, ActionAnswer):
        return click
    return _BUTTONS[action.action_id](click)


def _click_of(
    session: Session, ctx: Context, now: datetime, action: BlockAction, caller: Caller
) -> _Click | ActionAnswer:
    """The click, when it names a breach of a lead in the store that the clicker may act on
    with a button the worker knows; else the answer saying why not."""
    if action.action_id not in _BUTTONS:
        return ActionAnswer(f"not found: no action {action.action_id[:40]}", reply=_UNKNOWN)
    breach = BreachRef.parse(action.value)
    if breach is None:
        return ActionAnswer("not found: not a breach", reply=_UNKNOWN)
    bundle = lead_to_act_on(session, ctx, caller, breach.lead_id, "act on")
    if isinstance(bundle, ActionAnswer):
        return bundle
    assert caller.email is not None
    return _Click(session, ctx, now, action, caller, caller.email, breach, bundle)


def lead_to_act_on(
    session: Session, ctx: Context, caller: Caller, lead_id: str, verb: str
) -> queries.LeadBundle | ActionAnswer:
    """The lead, when it is in the store and the caller may ``verb`` it (its owner, their
    manager, an admin: ``worker.permissions``); else the answer saying why not."""
    bundles = queries.load_bundles(session, [lead_id])
    if not bundles:
        text = f"Lead {escape(lead_id)} is no longer in the store: nothing to do."
        return ActionAnswer("not found", lead_id, text)
    if caller.email is None:
        text = (
            "Slack did not tell the SLA worker your e-mail address, so it cannot tell whether "
            "you may act on this lead: nothing changed."
        )
        return ActionAnswer("refused: no e-mail for the Slack user", lead_id, text)
    access = access_to(session, ctx, lead_id)
    if not access.allows(caller.email):
        return ActionAnswer("refused", lead_id, replies.refusal(lead_id, access.who(), verb))
    return bundles[0]


@dataclass(frozen=True)
class _Click:
    """A click that may act on its breach: everything a button needs."""

    session: Session
    ctx: Context
    now: datetime
    action: BlockAction
    caller: Caller
    email: str
    breach: BreachRef
    bundle: queries.LeadBundle


def _acknowledge(click: _Click) -> ActionAnswer:
    session, ctx, now, caller, breach = (
        click.session, click.ctx, click.now, click.caller, click.breach
    )  # fmt: skip
    bundle, lead_id = click.bundle, breach.lead_id
    earlier = acknowledgements.of_breach(session, lead_id, breach.rule, breach.deadline_at)
    if earlier is not None:
        return _already(earlier, bundle.lead_name, caller, ctx, session)
    finding = session.get(Finding, (lead_id, breach.rule))
    if (
        finding is None
        or finding.state != RuleState.BREACHED.value
        or finding.deadline_at != breach.deadline_at
    ):
        text = replies.not_current(bundle.lead_name, rule_title(breach.rule))
        return ActionAnswer("not current", lead_id, text)
    name = caller.shown_name
    ack, created = acknowledgements.acknowledge(
        session,
        lead_id=lead_id,
        rule=breach.rule,
        deadline_at=breach.deadline_at,
        by_email=click.email,
        by_slack_user_id=caller.slack_user_id,
        by_name=name,
        at=now,
    )
    if not created:  # someone clicked the same breach at the same moment
        return _already(ack, bundle.lead_name, caller, ctx, session)
    cancelled = outbox.cancel_acknowledged(
        session,
        lead_id,
        breach.rule,
        breach.deadline_at,
        OVERDUE,
        f"acknowledged by {name}",
    )
    told = _tell_the_rep(session, ctx, now, bundle, breach, finding, caller)
    outcome = f"acknowledged: {cancelled} pending reminders cancelled" + (
        "; the rep is told" if told else ""
    )
    return ActionAnswer(outcome, lead_id, shown=_acknowledgement_shown(name, now))


def _acknowledgement_shown(name: str, at: datetime) -> Shown:
    return Shown(lambda tz: acknowledgement_note(name, at, tz), with_acknowledgement)


_UNKNOWN = "The SLA worker does not know this button (is the message very old?): nothing changed."


def _already(
    ack: Acknowledgement, lead_name: str, caller: Caller, ctx: Context, session: Session
) -> ActionAnswer:
    tz = caller.tz or _zone_of_lead(session, ctx, ack.lead_id)
    text = replies.already_acknowledged(lead_name, ack.by_name, format_local(ack.at, tz))
    return ActionAnswer(
        f"already acknowledged by {ack.by_email}",
        ack.lead_id,
        text,
        shown=_acknowledgement_shown(ack.by_name, ack.at),
    )


def _tell_the_rep(
    session: Session,
    ctx: Context,
    now: datetime,
    bundle: queries.LeadBundle,
    breach: BreachRef,
    finding: Finding,
    caller: Caller,
) -> bool:
    """Queue a DM to the lead's rep saying who acknowledged the breach (not when the rep
    acknowledged it themselves); whether one was queued."""
    envelope = _to_the_rep(
        ctx,
        bundle,
        breach,
        finding,
        NoticeKind.ACKNOWLEDGED,
        repeat="0",
        at=now,
        acknowledged_by=caller.shown_name,
        acknowledged_at=now,
    )
    if envelope is None or envelope.recipient == f"email:{caller.email}":
        return False
    return outbox.enqueue(session, [envelope], now) == 1


def _to_the_rep(
    ctx: Context,
    bundle: queries.LeadBundle,
    breach: BreachRef,
    finding: Finding,
    kind: NoticeKind,
    *,
    repeat: str,
    at: datetime,
    acknowledged_by: str | None = None,
    acknowledged_at: datetime | None = None,
) -> Envelope | None:
    """A DM of ``kind`` about ``breach`` to the lead's rep (their manager for a lead without
    an owner's e-mail), due at ``at`` after the grouping window, in working hours; its dedup
    key is the breach's with ``repeat`` as the repeat part. None: nobody to send it to."""
    agreement = ctx.agreement
    config = agreement.config
    facts = lead_facts(bundle, config.crm.record_url)
    owner = bundle.owner
    team = agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
    recipient = resolve_recipient("rep", facts, team)
    if recipient is None:
        return None
    quiet = config.notifications.quiet_hours
    notice = Notice(
        kind=kind,
        rule=breach.rule,
        lead_id=facts.lead_id,
        lead_name=facts.lead_name,
        company=facts.company,
        priority=facts.priority,
        record_url=facts.record_url,
        deadline_at=breach.deadline_at,
        detail=finding.detail,
        level=0,
        policy=finding.policy,
        rep_name=facts.rep_name,
        timezone=team.calendar.timezone,
        team=team.name,
        quiet=quiet,
        acknowledged_by=acknowledged_by,
        acknowledged_at=acknowledged_at,
    )
    return Envelope(
        dedup_key=f"{breach}|{kind}|0|{repeat}|{recipient}",
        kind=kind,
        lead_id=facts.lead_id,
        rule=breach.rule,
        level=0,
        recipient=recipient,
        delivery=Delivery.DIRECT,
        payload=notice.to_payload(),
        due_at=direct_due_at(
            at, team.calendar, group_wait=config.notifications.group_wait, quiet=quiet
        ),
    )


# -- Snooze -------------------------------------------------------------------------------------


def _snooze(click: _Click) -> ActionAnswer:
    """Hold the rep's reminders of the breach (or warning) back until the time chosen, at
    most ``slack.max_snooze`` from now: pending ones are moved to then, evaluate drafts none
    due before then, and one returns then. Escalation levels above the rep are untouched."""
    session, ctx, now, breach, bundle = (
        click.session, click.ctx, click.now, click.breach, click.bundle
    )  # fmt: skip
    lead_id = breach.lead_id
    finding = session.get(Finding, (lead_id, breach.rule))
    if (
        finding is None
        or finding.state not in (RuleState.BREACHED.value, RuleState.WARNING.value)
        or finding.deadline_at != breach.deadline_at
    ):
        text = replies.not_current(bundle.lead_name, rule_title(breach.rule), "reminder", "snooze")
        return ActionAnswer("not current", lead_id, text)
    owner = bundle.owner
    team = ctx.agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
    max_snooze = ctx.agreement.config.slack.max_snooze
    chosen = snoozed_until(click.action.action_id, now, team.calendar)
    until = min(chosen, now + max_snooze)
    name = click.caller.shown_name
    snoozes.snooze(
        session,
        lead_id=lead_id,
        rule=breach.rule,
        deadline_at=breach.deadline_at,
        until=until,
        by_email=click.email,
        by_name=name,
        at=now,
    )
    moved = outbox.postpone_snoozed(
        session, lead_id, breach.rule, breach.deadline_at, SNOOZABLE, until
    )
    # The reminder that returns when the snooze ends, even if no repeat falls due then: a
    # breach by then (a warning's deadline may pass while it sleeps), else the warning.
    overdue = finding.state == RuleState.BREACHED.value or breach.deadline_at <= until
    kind = NoticeKind.BREACH if overdue else NoticeKind.WARNING
    repeat = f"{outbox.SNOOZE_RETURN}{until.isoformat()}"
    envelope = _to_the_rep(ctx, bundle, breach, finding, kind, repeat=repeat, at=until)
    returns = False
    if envelope is not None:
        outbox.cancel_snooze_returns(
            session,
            lead_id,
            breach.rule,
            breach.deadline_at,
            envelope.dedup_key,
            f"snoozed again by {name}",
        )
        returns = outbox.enqueue(session, [envelope], now) == 1
    outcome = f"snoozed until {until.isoformat()}: {moved} pending reminders moved" + (
        "; a reminder returns then" if returns else ""
    )
    reply = None
    if chosen > until:
        tz = click.caller.tz or team.calendar.timezone
        outcome += f"; cut from {chosen.isoformat()} by slack.max_snooze"
        reply = replies.snooze_capped(
            format_local(chosen, tz), format_local(until, tz), format_duration(max_snooze)
        )
    shown = Shown(lambda tz: snooze_note(name, until, tz), with_reminder_note)
    return ActionAnswer(outcome, lead_id, reply, shown=shown)


def snoozed_until(action_id: str, now: datetime, calendar: BusinessCalendar) -> datetime:
    """When a snooze chosen at ``now`` ends, before the ``slack.max_snooze`` bound: an hour
    later moved into the calendar's working hours (``snooze_1h``), or the first opening of
    the next business day after today in the calendar's zone (``snooze_tomorrow``)."""
    if action_id == SNOOZE_1H:
        return calendar.next_open_at(now + timedelta(hours=1))
    zone = ZoneInfo(calendar.timezone)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    midnight = datetime.combine(tomorrow, time(0), tzinfo=zone).astimezone(now.tzinfo)
    return calendar.next_open_at(midnight)


# -- Logged a touch -----------------------------------------------------------------------------

#: How long *Logged a touch* waits in all for sync and evaluate passes another worker runs,
#: polling: well inside the click task's soft time limit (one minute), with the passes' own.
REFRESH_WAIT = timedelta(seconds=20)
REFRESH_POLL = timedelta(seconds=1)


def refresh(
    ctx: Context,
    *,
    sleep: Callable[[float], None] = time_module.sleep,
    wait_for: timedelta = REFRESH_WAIT,
) -> datetime:
    """Sync, then evaluate, now: each stage once, after the pass another worker runs (a
    lease) when there is one, polled every :data:`REFRESH_POLL`, for at most ``wait_for`` in
    all (then what that pass brings is what is judged). The time it ended."""
    from worker.pipeline.stages import run_stage  # the stages import the pipeline's modules

    waited = timedelta(0)
    for stage in ("sync", "evaluate"):
        while getattr(run_stage(ctx, stage), "already_running", False) and waited < wait_for:
            sleep(REFRESH_POLL.total_seconds())
            waited += REFRESH_POLL
    return ctx.clock()


def _touched(click: _Click) -> ActionAnswer:
    """After :func:`refresh`: the breach (or warning) met means the touch is in the CRM (the
    line says so); still open, the clicker is told what the CRM lacks, and nothing changes."""
    session, breach, bundle = click.session, click.breach, click.bundle
    finding = session.get(Finding, (breach.lead_id, breach.rule))
    still_open = (
        finding is not None
        and finding.state in (RuleState.BREACHED.value, RuleState.WARNING.value)
        and finding.deadline_at == breach.deadline_at
    )
    if finding is not None and still_open:
        since = finding.started_at or breach.deadline_at
        tz = click.caller.tz or _zone_of_lead(session, click.ctx, breach.lead_id)
        text = replies.no_touch_yet(bundle.lead_name, format_local(since, tz))
        return ActionAnswer("no touch in the CRM", breach.lead_id, text)
    met_at = finding.met_at if finding is not None else None
    outcome = f"touch found: {met_at.isoformat()}" if met_at else "no longer open"
    shown = Shown(lambda tz: touch_found_note(met_at, tz), with_reminder_note)
    return ActionAnswer(outcome, breach.lead_id, shown=shown)


#: What each button does, by its ``action_id``.
_BUTTONS: dict[str, Callable[[_Click], ActionAnswer]] = {
    ACKNOWLEDGE: _acknowledge,
    SNOOZE_1H: _snooze,
    SNOOZE_TOMORROW: _snooze,
    TOUCHED: _touched,
}
#: The ``action_id`` s ``sla-worker web`` listens for: the buttons, the *Reassign* menu
#: (``slack_reassign``) and a recycle approval request's buttons (``recycle_decisions``).
BUTTONS = (*_BUTTONS, REASSIGN, *APPROVAL_BUTTONS)
