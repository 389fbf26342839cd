"""``sla-worker explain LEAD_ID``: why a lead is where it is, as a timeline in plain words.

Reads the stored lead, its touches and status history, and asks the engine to narrate them
at the current time; then what people did about the lead from Slack: the breaches they
acknowledged, the reminders they snoozed, and every command and button (the ``actions``
audit). Read-only: it changes nothing in the store or the CRM.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from worker.errors import SlaWorkerError
from worker.notices import rule_title
from worker.pipeline.context import Context
from worker.pipeline.evaluate import engine_inputs
from worker.sla import explain_lead, select_policy
from worker.slack.messages import format_local
from worker.store import acknowledgements, actions, queries, snoozes
from worker.store.db import session_scope
from worker.store.models import Owner


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
        names = {o.id: o.display_name for o in session.scalars(select(Owner)).all()}
        acknowledged = acknowledgements.of_lead(session, lead_id)
        snoozed = snoozes.of_lead(session, lead_id)
        audit = actions.of_lead(session, lead_id)
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
    if audit:
        lines += ["", "From Slack (who, what, outcome):"]
        lines += [
            f"{format_local(a.at, tz):>24}  {a.email or 'unknown e-mail'} ({a.slack_user_id}): "
            f"{a.action} → {a.outcome}"
            for a in audit
        ]
    return "\n".join(lines)
