"""``sla-worker leads``: the tracked leads, to find the id ``explain`` needs — each with its
owner, policy, where it stands (its most urgent rule) and the next deadline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.names import display_name
from worker.sla import RuleState
from worker.store.db import chunks
from worker.store.models import Finding, Lead, Owner

#: Most urgent first: the state a lead is listed under is its most urgent rule's.
URGENCY = (
    RuleState.BREACHED,
    RuleState.WARNING,
    RuleState.PENDING,
    RuleState.MET_LATE,
    RuleState.MET,
    RuleState.NOT_APPLICABLE,
)


@dataclass(frozen=True)
class LeadLine:
    lead_id: str
    name: str
    company: str
    owner: str
    policy: str
    state: str
    rule: str
    deadline_at: datetime | None


def list_leads(
    session: Session, *, breached: bool = False, rep: str | None = None, limit: int = 50
) -> list[LeadLine]:
    """Tracked leads, breached first, then by deadline; ``rep`` is an owner's e-mail."""
    query = (
        select(Lead, Owner.email, Owner.first_name, Owner.last_name)
        .outerjoin(Owner, Owner.id == Lead.owner_id)
        .where(Lead.archived.is_(False))
    )
    if rep:
        query = query.where(func.lower(Owner.email) == rep.strip().lower())
    if breached:
        query = query.where(
            select(Finding.lead_id)
            .where(Finding.lead_id == Lead.id, Finding.state == RuleState.BREACHED)
            .exists()
        )
    rows = session.execute(query).all()
    findings: dict[str, list[Finding]] = {}
    ids = [row[0].id for row in rows]
    for chunk in chunks(ids):
        for finding in session.scalars(select(Finding).where(Finding.lead_id.in_(chunk))):
            findings.setdefault(finding.lead_id, []).append(finding)
    lines = [
        _line(lead, email, first, last, findings.get(lead.id, []))
        for lead, email, first, last in rows
    ]
    lines.sort(key=_order)
    return lines[:limit]


def _line(
    lead: Lead, email: str | None, first: str | None, last: str | None, found: Sequence[Finding]
) -> LeadLine:
    urgent = min(found, key=_urgency, default=None)
    owner = display_name(first, last, email, "no owner") if lead.owner_id else "no owner"
    return LeadLine(
        lead.id,
        lead.display_name,
        lead.company or "",
        owner,
        urgent.policy if urgent else "",
        (urgent.state if urgent else "not judged yet").replace("_", " "),
        urgent.rule.replace("_", " ") if urgent else "",
        urgent.deadline_at if urgent else None,
    )


def _urgency(finding: Finding) -> tuple[int, datetime]:
    rank = URGENCY.index(RuleState(finding.state)) if finding.state in set(URGENCY) else 99
    return rank, finding.deadline_at or datetime.max.replace(tzinfo=UTC)


def _order(line: LeadLine) -> tuple[int, str, str]:
    states = [s.value.replace("_", " ") for s in URGENCY]
    rank = states.index(line.state) if line.state in states else len(states)
    deadline = line.deadline_at.isoformat() if line.deadline_at else "9999"
    return rank, deadline, line.lead_id


def leads_text(lines: Sequence[LeadLine]) -> str:
    if not lines:
        return "no leads match"
    header = f"{'id':<12} {'state':<15} {'deadline (UTC)':<17} {'owner':<22} lead"
    out = [header]
    for line in lines:
        deadline = f"{line.deadline_at:%Y-%m-%d %H:%M}" if line.deadline_at else "—"
        state = f"{line.state} {line.rule}".strip() if line.state == "breached" else line.state
        company = f" ({line.company})" if line.company else ""
        out.append(
            f"{line.lead_id:<12} {state[:15]:<15} {deadline:<17} {line.owner[:22]:<22} "
            f"{line.name}{company}"
        )
    return "\n".join(out)
