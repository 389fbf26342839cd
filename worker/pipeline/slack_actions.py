"""Buttons clicked in Slack, carried out: the *Acknowledge* button of a manager's digest line.

``run(ctx, now, action)`` is what the Celery task ``worker.tasks.slack_action`` calls once
``sla-worker web`` has acknowledged the click (tests call it without a broker). Acknowledging
a breach (lead, rule, breached deadline) stops it like a PagerDuty acknowledgement: no repeat
and no next escalation level is sent (evaluate drafts none, deliver drops any written before).

One transaction decides and records: who clicked (``slack_callers.identify``), whether they
may act on the lead (the rule of ``worker.permissions``, as for ``/sla``), whether the breach is
the lead's open one; then the acknowledgement, its reminders still pending cancelled (an outbox
transition), a DM to the rep saying who acknowledged (through the outbox, in their working
hours) and the audit row. Then, to Slack: the clicked message is updated in place
(``chat.update``) to show the line acknowledged, and anything else is answered to the clicker
alone through the payload's ``response_url``. A refusal changes nothing but the audit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from worker.errors import SlaWorkerError
from worker.notices import OVERDUE, BreachRef, Notice, NoticeKind, rule_title
from worker.pipeline.context import Context
from worker.pipeline.evaluate import lead_facts
from worker.pipeline.notifications import resolve_recipient
from worker.pipeline.slack_callers import Caller, SlackDirectory, access_to, identify, slack_client
from worker.pipeline.timing import direct_due_at
from worker.sla import RuleState
from worker.slack import replies
from worker.slack.messages import (
    ACKNOWLEDGE,
    acknowledgement_note,
    escape,
    format_local,
    with_acknowledgement,
)
from worker.slack.response_url import reply_ephemeral
from worker.store import acknowledgements, outbox, queries
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
        return cls(
            user_id=str((payload.get("user") or {}).get("id") or ""),
            action_id=str(action.get("action_id") or ""),
            value=str(action.get("value") or ""),
            response_url=str(payload.get("response_url") or ""),
            channel_id=str(container.get("channel_id") or channel.get("id") or ""),
            message_ts=str(container.get("message_ts") or message.get("ts") or ""),
            message_text=str(message.get("text") or ""),
            message_blocks=[dict(b) for b in blocks] if isinstance(blocks, list) else [],
        )

    def as_task_kwargs(self) -> dict[str, Any]:
        """The task's arguments (JSON for the broker)."""
        return asdict(self)


@dataclass(frozen=True)
class ActionAnswer:
    """What came of a click: the audit's outcome, the reply to the clicker (None: the updated
    message says it all), and the breach's acknowledgement to show in the message."""

    outcome: str
    lead_id: str | None = None
    reply: str | None = None
    #: The acknowledgement (who, when) the clicked line is to show; None: leave it.
    shown: tuple[str, datetime] | None = None

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
) -> ActionAnswer:
    """Carry out ``action`` for its clicker, audit it, and show the outcome: the message
    updated in place, or an answer to the clicker alone. A reply Slack refuses is noted in
    the audit and raised (the clicker saw nothing; the task is recorded as failed)."""
    caller = identify(ctx, now, action.user_id, directory or slack_client(ctx))
    with session_scope(ctx.sessions) as session:
        answer = _carry_out(session, ctx, now, action, caller)
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
        by, at = answer.shown
        note = acknowledgement_note(by, at, tz)
        try:
            _show_in_message(updater or slack_client(ctx), action, note)
        except SlaWorkerError as e:
            log.warning("could not update the message %s: %s", action.message_ts, e)
            with session_scope(ctx.sessions) as session:
                note_reply_failed(session, audit_id, f"message not updated: {e}")
            text = text or f"{note}. (The message could not be updated: {escape(str(e))}.)"
    if text is not None:
        try:
            reply(action.response_url, text)
        except SlaWorkerError as e:
            with session_scope(ctx.sessions) as session:
                note_reply_failed(session, audit_id, str(e))
            raise
    return answer


def _show_in_message(updater: MessageUpdater, action: BlockAction, note: str) -> None:
    """The clicked message with the breach's lines acknowledged (``chat.update``, same text);
    nothing when the message has no such line any more."""
    if not action.channel_id or not action.message_ts:
        return
    blocks = with_acknowledgement(action.message_blocks, action.value, note)
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
    if action.action_id != ACKNOWLEDGE:
        return ActionAnswer(f"not found: no action {action.action_id[:40]}", reply=_UNKNOWN)
    breach = BreachRef.parse(action.value)
    if breach is None:
        return ActionAnswer("not found: not a breach", reply=_UNKNOWN)
    bundles = queries.load_bundles(session, [breach.lead_id])
    if not bundles:
        text = f"Lead {escape(breach.lead_id)} is no longer in the store: nothing to acknowledge."
        return ActionAnswer("not found", breach.lead_id, text)
    bundle = bundles[0]
    lead_id = breach.lead_id
    if caller.email is None:
        text = (
            "Slack did not tell the SLA worker your e-mail address, so it cannot tell whether "
            "you may act on this lead: nothing changed."
        )
        return ActionAnswer("refused: no e-mail for the Slack user", lead_id, text)
    access = access_to(session, ctx, lead_id)
    if not access.allows(caller.email):
        return ActionAnswer("refused", lead_id, replies.refusal(lead_id, access.who(), "act on"))
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
        by_email=caller.email,
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
    return ActionAnswer(outcome, lead_id, shown=(name, now))


_UNKNOWN = "The SLA worker does not know this button (is the message very old?): nothing changed."


def _already(
    ack: Acknowledgement, lead_name: str, caller: Caller, ctx: Context, session: Session
) -> ActionAnswer:
    tz = caller.tz or _zone_of_lead(session, ctx, ack.lead_id)
    text = replies.already_acknowledged(lead_name, ack.by_name, format_local(ack.at, tz))
    return ActionAnswer(
        f"already acknowledged by {ack.by_email}", ack.lead_id, text, shown=(ack.by_name, ack.at)
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
    agreement = ctx.agreement
    config = agreement.config
    facts = lead_facts(bundle, config.crm.record_url)
    owner = bundle.owner
    team = agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
    recipient = resolve_recipient("rep", facts, team)
    if recipient is None or recipient == f"email:{caller.email}":
        return False
    quiet = config.notifications.quiet_hours
    notice = Notice(
        kind=NoticeKind.ACKNOWLEDGED,
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
        acknowledged_by=caller.shown_name,
        acknowledged_at=now,
    )
    envelope = Envelope(
        dedup_key=f"{breach}|{NoticeKind.ACKNOWLEDGED}|0|0|{recipient}",
        kind=NoticeKind.ACKNOWLEDGED,
        lead_id=facts.lead_id,
        rule=breach.rule,
        level=0,
        recipient=recipient,
        delivery=Delivery.DIRECT,
        payload=notice.to_payload(),
        due_at=direct_due_at(
            now, team.calendar, group_wait=config.notifications.group_wait, quiet=quiet
        ),
    )
    return outbox.enqueue(session, [envelope], now) == 1
