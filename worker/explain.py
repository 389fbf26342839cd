"""``sla-worker explain LEAD_ID``: why a lead is where it is, as a timeline in plain words.

Reads the stored lead, its touches and status history, and asks the engine to narrate them
at the current time. Read-only: it changes nothing in the store or the CRM.
"""

from __future__ import annotations

from sqlalchemy import select

from worker.config import load_ruleset
from worker.errors import SlaWorkerError
from worker.pipeline.context import utc_now
from worker.pipeline.evaluate import engine_inputs
from worker.settings import Settings
from worker.sla import explain_lead, select_policy
from worker.slack.messages import format_local
from worker.store import queries
from worker.store.db import make_engine, make_sessionmaker, session_scope
from worker.store.models import Owner


def explain_text(settings: Settings, lead_id: str) -> str:
    rules = load_ruleset(settings.config_path)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            bundles = queries.load_bundles(session, [lead_id])
            if not bundles:
                raise SlaWorkerError(
                    f"lead {lead_id} is not in the store (has sync run? is the id right?)"
                )
            bundle = bundles[0]
            owner = bundle.owner
            team = rules.team_for(owner.email if owner else None, owner.teams if owner else [])
            lead, touches = engine_inputs(bundle)
            now = utc_now()
            policy = select_policy(lead, rules.policies)
            names = {
                o.id: " ".join(p for p in (o.first_name, o.last_name) if p) or o.email or o.id
                for o in session.scalars(select(Owner)).all()
            }
            entries = explain_lead(
                lead,
                touches,
                policy,
                team.calendar,
                rules.touch_rules,
                rules.escalation,
                now,
                owner_names=names,
            )
    finally:
        engine.dispose()
    tz = team.calendar.timezone
    name = " ".join(p for p in (bundle.lead.first_name, bundle.lead.last_name) if p)
    header = (
        f"Lead {lead_id} {name} · team {team.name} · calendar {team.calendar.name} ({tz})"
        f" · policy {policy.name}"
    )
    lines = [header, ""]
    lines += [f"{format_local(e.at, tz):>24}  {e.text}" for e in entries]
    return "\n".join(lines)
