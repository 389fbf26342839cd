"""Clicks on a recycle approval request: *Approve* and *Keep* on one lead, *Approve all* on
the leads of one request message (``slack_actions.run`` hands them over).

Who may decide a lead: the manager of its owner's team or an SLA admin (``slack.admins``), not
the owner: the rep does not approve taking their own lead away. *Approve all* approves the
waiting leads the clicker may decide and says which it left for someone else. One transaction
decides (a conditional update: a lead is decided once, by the first click) and audits each
lead (``worker.store.actions``); then the request message is rendered again from the store and
updated in place (``chat.update``), and anything else is answered to the clicker alone. A
refusal changes nothing but the audit. Nothing is written to the CRM here: the next recycle
run writes back the approved leads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from worker.errors import SlaWorkerError
from worker.permissions import LeadAccess
from worker.pipeline.context import Context
from worker.pipeline.recycle_approval import (
    proposed_lead,
    request_message,
    zone_of_proposal,
)
from worker.pipeline.slack_actions import ActionAnswer, BlockAction, MessageUpdater, Reply
from worker.pipeline.slack_callers import Caller, access_to
from worker.slack import replies
from worker.slack.approvals import APPROVE, APPROVE_ALL, KEEP, already_decided
from worker.slack.messages import clip, escape
from worker.store import recycle_approvals
from worker.store.actions import note_reply_failed, record_action
from worker.store.db import session_scope
from worker.store.models import RecycleApproval

log = logging.getLogger(__name__)

_UNKNOWN = "This recycle approval is not known to the SLA worker (is the message very old?): "
_PAST = {
    recycle_approvals.APPROVE: "approved",
    recycle_approvals.KEEP: "kept",
    recycle_approvals.TIMEOUT_APPROVE: "approved by default",
    recycle_approvals.TIMEOUT_KEEP: "kept by default",
}
_ALL_DECIDED = "Every lead in this request is already decided: nothing changed."
_NO_EMAIL = (
    "Slack did not tell the SLA worker your e-mail address, so it cannot tell whether you may "
    "decide this: nothing changed."
)


@dataclass
class _Outcome:
    """What one click did: the answer, one audit line per lead it concerned, and the
    request message to update."""

    answer: ActionAnswer
    audits: list[tuple[str | None, str]] = field(default_factory=list)
    request_key: str | None = None


def on_click(
    ctx: Context,
    now: datetime,
    action: BlockAction,
    caller: Caller,
    *,
    updater: MessageUpdater,
    reply: Reply,
) -> ActionAnswer:
    """Carry out an approval click, audit it, update the request, answer the clicker."""
    with session_scope(ctx.sessions) as session:
        outcome = _decide(session, ctx, now, action, caller)
        audit_ids = [
            record_action(
                session,
                at=now,
                slack_user_id=action.user_id,
                email=caller.email,
                action=f"{action.action_id} {action.value}".strip(),
                lead_id=lead_id,
                outcome=what,
            )
            for lead_id, what in outcome.audits
        ]
        message = (
            request_message(session, ctx.agreement, outcome.request_key)
            if outcome.request_key
            else None
        )
    answer = outcome.answer
    text = answer.reply
    if message is not None and action.channel_id and action.message_ts:
        try:
            updater.update_message(
                action.channel_id, action.message_ts, message.text, blocks=message.blocks
            )
        except SlaWorkerError as e:
            log.warning("could not update the approval request %s: %s", action.message_ts, e)
            with session_scope(ctx.sessions) as session:
                for audit_id in audit_ids:
                    note_reply_failed(session, audit_id, f"message not updated: {e}")
            text = (text + "\n" if text else "Done. ") + (
                f"(The message could not be updated: {escape(str(e))}.)"
            )
    if text is not None:
        try:
            reply(action.response_url, text)
        except SlaWorkerError as e:
            with session_scope(ctx.sessions) as session:
                for audit_id in audit_ids:
                    note_reply_failed(session, audit_id, str(e))
            raise
    return answer


def _decide(
    session: Session, ctx: Context, now: datetime, action: BlockAction, caller: Caller
) -> _Outcome:
    if action.action_id == APPROVE_ALL:
        return _approve_all(session, ctx, now, action, caller)
    proposal = session.get(RecycleApproval, int(action.value)) if action.value.isdigit() else None
    if proposal is None:
        answer = ActionAnswer("not found: no such proposal", reply=_UNKNOWN + "nothing changed.")
        return _Outcome(answer, [(None, answer.outcome)])
    lead_id, key = proposal.lead_id, proposal.request_key
    if caller.email is None:
        answer = ActionAnswer("refused: no e-mail for the Slack user", lead_id, _NO_EMAIL)
        return _Outcome(answer, [(lead_id, answer.outcome)])
    access = _deciders(session, ctx, lead_id)
    if not access.allows(caller.email):
        text = replies.refusal(lead_id, access.who(), "decide the recycling of")
        return _Outcome(ActionAnswer("refused", lead_id, text), [(lead_id, "refused")])
    decision = recycle_approvals.APPROVE if action.action_id == APPROVE else recycle_approvals.KEEP
    taken = recycle_approvals.decide(
        session, proposal.id, decision, by_email=caller.email, by_name=caller.shown_name, at=now
    )
    proposal = session.get(RecycleApproval, proposal.id)
    assert proposal is not None
    if not taken:  # decided or closed before (a second click, two people at once)
        tz = caller.tz or zone_of_proposal(session, ctx.agreement, proposal)
        text = already_decided(proposed_lead(session, ctx.agreement, proposal), tz)
        what = f"already {_PAST.get(proposal.decision or '', 'closed')}" + (
            f" by {proposal.decided_by_email}" if proposal.decided_by_email else ""
        )
        return _Outcome(ActionAnswer(what, lead_id, text), [(lead_id, what)], key)
    what = "approved" if decision == recycle_approvals.APPROVE else "kept"
    return _Outcome(ActionAnswer(what, lead_id), [(lead_id, what)], key)


def _approve_all(
    session: Session, ctx: Context, now: datetime, action: BlockAction, caller: Caller
) -> _Outcome:
    """The waiting leads of the request the clicker may decide, approved; the others left."""
    key = action.value
    proposals = recycle_approvals.of_request(session, key)
    if not proposals:
        answer = ActionAnswer("not found: no such request", reply=_UNKNOWN + "nothing changed.")
        return _Outcome(answer, [(None, answer.outcome)])
    if caller.email is None:
        answer = ActionAnswer("refused: no e-mail for the Slack user", None, _NO_EMAIL)
        return _Outcome(answer, [(None, answer.outcome)])
    waiting = [p for p in proposals if p.decision is None and p.closed_at is None]
    if not waiting:
        answer = ActionAnswer("already decided", None, _ALL_DECIDED)
        return _Outcome(answer, [(None, answer.outcome)], key)
    audits: list[tuple[str | None, str]] = []
    approved: list[str] = []
    left: list[str] = []
    for proposal in waiting:
        lead_id = proposal.lead_id
        access = _deciders(session, ctx, lead_id)
        name = proposed_lead(session, ctx.agreement, proposal).lead_name
        if not access.allows(caller.email):
            audits.append((lead_id, "refused"))
            left.append(f"{escape(clip(name))} (only {escape(access.who())})")
        elif recycle_approvals.decide(
            session,
            proposal.id,
            recycle_approvals.APPROVE,
            by_email=caller.email,
            by_name=caller.shown_name,
            at=now,
        ):
            audits.append((lead_id, "approved (approve all)"))
            approved.append(name)
        else:
            audits.append((lead_id, "already decided"))
    outcome = f"approved {len(approved)} of {len(waiting)} waiting"
    text: str | None = None
    if left:
        outcome += f"; {len(left)} left: not allowed"
        text = (
            f"Approved {len(approved)} of the {len(waiting)} waiting leads. You may not decide "
            f"these, so they still wait: {'; '.join(left)}."
        )
    # Nothing approved (nobody allowed, or decided meanwhile): the message stays as it is.
    return _Outcome(ActionAnswer(outcome, None, text), audits, key if approved else None)


def _deciders(session: Session, ctx: Context, lead_id: str) -> LeadAccess:
    """Who may decide a lead's recycling: the owner's manager or an SLA admin (not the
    owner; an unowned lead is the admins' alone)."""
    access = access_to(session, ctx, lead_id)
    return LeadAccess(None, None, access.manager_email, access.admins)


#: The ``action_id`` s this module answers.
BUTTONS = (APPROVE, KEEP, APPROVE_ALL)
