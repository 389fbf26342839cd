"""Recycle proposals waiting for approval (``recycle.approval: required``): which due lead a
run proposed, in which request message, who decided what, and what became of it.

A proposal is open until closed; at most one open proposal per lead (a partial unique index,
so two runs proposing the same lead at once leave one). A decision is taken once: a
conditional UPDATE that only an undecided, open proposal matches, so two clicks at once (or a
click and the timeout) cannot both decide it. Nothing is deleted here: closed proposals stay
for ``explain`` and for the rule that a kept lead is not proposed again until it changed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.store.db import chunks, insert_missing
from worker.store.models import RecycleApproval

APPROVE = "approve"
KEEP = "keep"
TIMEOUT_APPROVE = "timeout-approve"
TIMEOUT_KEEP = "timeout-keep"
#: Decisions that send the lead back to marketing at the next run.
APPROVED = (APPROVE, TIMEOUT_APPROVE)
#: Decisions that leave the lead with its owner (and close the proposal at once).
KEPT = (KEEP, TIMEOUT_KEEP)
#: Who decided, for a timeout: in the proposal and in the actions audit.
TIMEOUT = "timeout"


def propose(
    session: Session,
    *,
    lead_id: str,
    run_id: str,
    request_key: str,
    owner_id: str | None,
    reason: str,
    lead_modified_at: datetime,
    at: datetime,
    expires_at: datetime,
) -> bool:
    """Open a proposal for the lead unless it has an open one; whether this one was opened."""
    return insert_missing(
        session,
        RecycleApproval,
        lead_id=lead_id,
        run_id=run_id,
        request_key=request_key[:120],
        owner_id=owner_id,
        reason=reason,
        lead_modified_at=lead_modified_at,
        proposed_at=at,
        expires_at=expires_at,
        outcome="",
    )


def open_proposals(session: Session) -> list[RecycleApproval]:
    """Every open proposal, oldest first."""
    return list(
        session.scalars(
            select(RecycleApproval)
            .where(RecycleApproval.closed_at.is_(None))
            .order_by(RecycleApproval.id)
        )
    )


def kept_unchanged(session: Session, modified: Mapping[str, datetime]) -> set[str]:
    """The leads (id → their CRM modification time now) whose last proposal was kept and
    that have not changed in the CRM since it was proposed: not to be proposed again."""
    kept: set[str] = set()
    ids = list(modified)
    for chunk in chunks(ids):
        rows = session.execute(
            select(
                RecycleApproval.lead_id, RecycleApproval.decision, RecycleApproval.lead_modified_at
            )
            .where(RecycleApproval.lead_id.in_(chunk))
            .order_by(RecycleApproval.lead_id, RecycleApproval.id)
        ).all()
        last = {lead_id: (decision, at) for lead_id, decision, at in rows}
        for lead_id, (decision, at) in last.items():
            if decision in KEPT and modified[lead_id] <= at:
                kept.add(lead_id)
    return kept


def decide(
    session: Session,
    proposal_id: int,
    decision: str,
    *,
    by_email: str,
    by_name: str,
    at: datetime,
) -> bool:
    """Take ``decision`` on an open, undecided proposal; whether this call took it (False:
    someone decided first, or it was closed). A kept proposal is closed at once."""
    values: dict[str, object] = {
        "decision": decision,
        "decided_by_email": by_email[:320],
        "decided_by_name": by_name[:200],
        "decided_at": at,
    }
    if decision in KEPT:
        values |= {"closed_at": at, "outcome": "kept"}
    taken = session.execute(
        update(RecycleApproval)
        .where(
            RecycleApproval.id == proposal_id,
            RecycleApproval.decision.is_(None),
            RecycleApproval.closed_at.is_(None),
        )
        .values(**values)
        .returning(RecycleApproval.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.expire_all()
    return len(taken) == 1


def close(session: Session, ids: Collection[int], outcome: str, at: datetime) -> int:
    """Close the open proposals among ``ids`` with ``outcome``; how many."""
    if not ids:
        return 0
    closed = session.execute(
        update(RecycleApproval)
        .where(RecycleApproval.id.in_(list(ids)), RecycleApproval.closed_at.is_(None))
        .values(closed_at=at, outcome=outcome)
        .returning(RecycleApproval.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.expire_all()
    return len(closed)


def of_request(session: Session, request_key: str) -> list[RecycleApproval]:
    """The proposals one request message lists, in its order."""
    return list(
        session.scalars(
            select(RecycleApproval)
            .where(RecycleApproval.request_key == request_key)
            .order_by(RecycleApproval.id)
        )
    )


def of_lead(session: Session, lead_id: str) -> list[RecycleApproval]:
    """A lead's proposals, oldest first (for ``explain``)."""
    return list(
        session.scalars(
            select(RecycleApproval)
            .where(RecycleApproval.lead_id == lead_id)
            .order_by(RecycleApproval.id)
        )
    )


def by_ids(session: Session, ids: Sequence[int]) -> list[RecycleApproval]:
    if not ids:
        return []
    return list(
        session.scalars(
            select(RecycleApproval)
            .where(RecycleApproval.id.in_(list(ids)))
            .order_by(RecycleApproval.id)
        )
    )
