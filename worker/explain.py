"""``sla-worker explain LEAD_ID``: why a lead is where it is, as a timeline in plain words.

Reads the stored lead, its touches and status history, and asks the engine to narrate them
at the current time; then what people did about the lead from Slack: the breaches they
acknowledged, the reminders they snoozed, and every command and button (the ``actions``
audit). Read-only: it changes nothing in the store or the CRM.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from worker.durations import format_duration
from worker.errors import SlaWorkerError
from worker.notices import NoticeKind, rule_title
from worker.pipeline import away
from worker.pipeline.context import Context
from worker.pipeline.evaluate import engine_inputs, kept_clock
from worker.sla import explain_lead, select_policy
from worker.slack.messages import format_local
from worker.store import acknowledgements, actions, outbox, queries, recycle_approvals, snoozes
from worker.store.db import session_scope
from worker.store.models import Action, OutboxRow, Owner, RecycleApproval
from worker.store.outbox import Delivery


def explain_text(ctx: Context, lead_id: str, now: datetime) -> str:
    agreement = ctx.agreement
    with session_scope(ctx.sessions) as session:
        bundles = queries.load_bundles(session, [lead_id])
        if not bundles:
            raise SlaWorkerError(
                f"lead {lead_id} is not in the store (has sync run? is the id right?)"
            )
        bundle = bundles[0]
        owner = bundle.owner
        team = agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
        lead, touches = engine_inputs(bundle)
        policy = select_policy(lead, agreement.policies)
        lead = kept_clock(lead, bundle.lead.first_assigned_at, policy.name, agreement)
        names = {o.id: o.display_name for o in session.scalars(select(Owner)).all()}
        acknowledged = acknowledgements.of_lead(session, lead_id)
        snoozed = snoozes.of_lead(session, lead_id)
        audit = actions.of_lead(session, lead_id)
        since = bundle.lead.owner_assigned_at or bundle.lead.created_at
        away_periods = (
            away.explain_lines(session, agreement, owner.email, since, team.calendar.timezone)
            if owner is not None and owner.email
            else []
        )
        proposals = recycle_approvals.of_lead(session, lead_id)
        sent = outbox.sent_about(session, lead_id)
        entries = explain_lead(
            lead,
            touches,
            policy,
            team.calendar,
            agreement.touch_rules,
            agreement.escalation,
            now,
            owner_names=names,
        )
    tz = team.calendar.timezone
    header = (
        f"Lead {lead_id} {bundle.lead_name} · team {team.name} · calendar "
        f"{team.calendar.name} ({tz}) · policy {policy.name}"
    )
    lines = [header, ""]
    lines += [f"{format_local(e.at, tz):>24}  {e.text}" for e in entries]
    if acknowledged:
        lines += ["", "Acknowledged from Slack:"]
        lines += [
            f"{format_local(a.at, tz):>24}  {rule_title(a.rule).lower()} breach (deadline "
            f"{format_local(a.deadline_at, tz)}) acknowledged by {a.by_name} ({a.by_email}): "
            "no more reminders of it"
            for a in acknowledged
        ]
    if snoozed:
        lines += ["", "Snoozed from Slack (reminders to the rep only):"]
        lines += [
            f"{format_local(z.at, tz):>24}  {rule_title(z.rule).lower()} reminders (deadline "
            f"{format_local(z.deadline_at, tz)}) snoozed by {z.by_name} ({z.by_email}) until "
            f"{format_local(z.until, tz)}"
            for z in snoozed
        ]
    if proposals:
        lines += ["", "Recycle approval (recycle.approval: required):"]
        lines += [f"{format_local(at, tz):>24}  {text}" for at, text in _approval_lines(proposals)]
    if away_periods:
        lines += ["", "Owner away (reminders to the cover, the manager warned):"]
        lines += [f"{format_local(at, tz):>24}  {text}" for at, text in away_periods]
    if sent:
        kept = format_duration(agreement.config.notifications.keep_sent_for)
        lines += ["", f"Messages sent about it (kept {kept}):"]
        lines += [
            f"{format_local(row.sent_at, tz):>24}  {_message(row)}"
            for row in sent
            if row.sent_at is not None
        ]
    if audit:
        lines += ["", "From Slack (who, what, outcome):"]
        lines += [
            f"{format_local(a.at, tz):>24}  {_who(a)} ({a.slack_user_id}): {a.action} → {a.outcome}"
            for a in audit
        ]
    return "\n".join(lines)


_KINDS: dict[str, str] = {
    NoticeKind.WARNING: "warning",
    NoticeKind.BREACH: "breach reminder",
    NoticeKind.ESCALATION: "escalation",
    NoticeKind.RESOLVED: "done, late",
    NoticeKind.RECYCLED: "recycled notice",
    NoticeKind.ACKNOWLEDGED: "acknowledgement notice",
}


def _message(row: OutboxRow) -> str:
    """``escalation (first touch, level 1) to anna@example.com in a digest``."""
    what = _KINDS.get(row.kind, row.kind)
    about = rule_title(row.rule).lower()
    level = f", level {row.level}" if row.level else ""
    to = row.recipient.removeprefix("email:").removeprefix("channel:")
    how = " in a digest" if row.delivery == Delivery.DIGEST else ""
    return f"{what} ({about}{level}) to {to}{how}"


def _who(action: Action) -> str:
    if action.email is None and action.slack_user_id == recycle_approvals.TIMEOUT:
        return "nobody"  # a recycle approval's timeout
    return action.email or "unknown e-mail"


def _approval_lines(proposals: Sequence[RecycleApproval]) -> list[tuple[datetime, str]]:
    """Each proposal's story: proposed, decided (by whom, or the timeout), closed."""
    lines: list[tuple[datetime, str]] = []
    for p in proposals:
        lines.append((p.proposed_at, f"proposed for recycling (run {p.run_id}): {p.reason}"))
        if p.decision is not None and p.decided_at is not None:
            done = "approved" if p.decision in recycle_approvals.APPROVED else "kept"
            if p.decision.startswith(recycle_approvals.TIMEOUT):
                words = f"{done} by default: unanswered"
            else:
                words = f"{done} by {p.decided_by_name} ({p.decided_by_email})"
            lines.append((p.decided_at, words))
        if p.closed_at is not None and p.outcome != "kept":
            lines.append((p.closed_at, p.outcome))
    return lines
