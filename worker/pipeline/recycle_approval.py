"""Recycle approval (``recycle.approval: required``): a recycle run writes back only the leads
someone approved in Slack, and asks about the others.

One run, under the recycle lease like any other: (1) open proposals whose lead is no longer
due (touched, gone, without owner) are withdrawn; (2) proposals left unanswered past
``recycle.approval_timeout`` get ``recycle.approval_default`` (audited as decided by
``timeout``); (3) approved leads that are still due are written back exactly as a run without
approval writes them (re-read from the CRM, skipped when changed since judged, audited for
undo, announced to the rep and ``recycle.notify_channel``), and their proposals closed in the
same transaction; (4) due leads without an open proposal are proposed, and one request message
(in parts beyond Slack's limits) goes to the approval channel through the outbox. A kept lead
is not proposed again until it changed in the CRM (a touch, a status change) and is due again.
Request messages whose proposals changed are updated in place (``chat.update``). It never
writes back a lead nobody approved, and never decides what is stale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.config import Agreement, RecycleConfig
from worker.crm.client import CrmClient
from worker.errors import ConfigError, SlaWorkerError
from worker.pipeline import recycle
from worker.pipeline.recycle import RecycleSummary
from worker.slack.approvals import ProposedLead, render_request, request_parts
from worker.slack.messages import SlackMessage
from worker.store import outbox, recycle_approvals
from worker.store.actions import record_action
from worker.store.db import session_scope
from worker.store.models import Lead, OutboxRow, Owner, RecycleApproval
from worker.store.outbox import Delivery, Envelope

log = logging.getLogger(__name__)

#: The outbox ``kind`` (and ``rule``) of a request message.
KIND = "recycle_approval"


def request_key(run_id: str, part: int, parts: int) -> str:
    """A request message's outbox dedup key; its proposals carry it."""
    return f"{KIND}|{run_id}|{part}/{parts}"


def _part_of(key: str) -> tuple[int, int]:
    try:
        part, parts = key.rsplit("|", 1)[1].split("/")
        return int(part), int(parts)
    except (IndexError, ValueError):
        return 1, 1


def recycle_approved(
    crm: CrmClient,
    sessions: Callable[[], Session],
    agreement: Agreement,
    now: datetime,
    summary: RecycleSummary,
    slack: Callable[[], object] | None,
) -> RecycleSummary:
    """One recycle run with approval (see the module docstring)."""
    config = agreement.config.recycle
    assert config is not None
    changed: set[str] = set()  # request messages to update in place
    with session_scope(sessions) as session:
        changed |= _withdraw_no_longer_due(session, now)
        changed |= _apply_timeouts(session, config, now)
        proposals = recycle_approvals.open_proposals(session)
        approved = {p.lead_id: p.id for p in proposals if p.decision in recycle_approvals.APPROVED}
        waiting = {p.lead_id for p in proposals if p.decision is None}
        modified = dict(
            session.execute(
                select(Lead.id, Lead.modified_at).where(
                    Lead.recycle_reason.is_not(None), Lead.dirty.is_(False)
                )
            ).all()
        )
        kept = recycle_approvals.kept_unchanged(session, modified)
    eligible, owners = recycle._eligible_leads(
        sessions, config, now, summary, leaving_out=waiting | kept, first=set(approved)
    )
    # Approved leads the checks left out (a meeting booked, a protected stage) are closed.
    left_out = {i.lead_id: i.outcome for i in summary.items if i.lead_id in approved}
    to_write = [lead for lead in eligible if lead.id in approved]
    to_propose = [lead for lead in eligible if lead.id not in approved]
    planned = recycle._plan_writes(crm, sessions, config, to_write, owners, summary)
    for item in summary.items:
        # Gone, or with an open deal: closed. Changed since judged: judged again, then tried.
        if item.lead_id in approved and item.outcome in (
            "skipped: gone from the CRM",
            "skipped: it has an open deal",
        ):
            left_out[item.lead_id] = item.outcome
    if left_out:
        with session_scope(sessions) as session:
            for lead_id, outcome in left_out.items():
                closing = [approved[lead_id]]
                if recycle_approvals.close(session, closing, f"not written: {outcome}", now):
                    changed |= _keys_of(session, closing)

    def close_written(session: Session, lead_ids: list[str]) -> None:
        ids = [approved[lead_id] for lead_id in lead_ids]
        recycle_approvals.close(session, ids, f"recycled (run {summary.run_id})", now)
        changed.update(_keys_of(session, ids))

    recycle.write_back(
        crm, sessions, agreement, config, planned, owners, summary, now, also=close_written
    )
    if to_propose:
        _propose(sessions, agreement, config, to_propose, owners, summary, now)
    if changed:
        _update_requests(sessions, agreement, changed, slack)
    return summary


def _apply_timeouts(session: Session, config: RecycleConfig, now: datetime) -> set[str]:
    """Unanswered proposals past their time get the configured default, each audited as
    decided by ``timeout``; the request keys they change."""
    decision = (
        recycle_approvals.TIMEOUT_APPROVE
        if config.approval_default == "approve"
        else recycle_approvals.TIMEOUT_KEEP
    )
    keys: set[str] = set()
    for proposal in recycle_approvals.open_proposals(session):
        if proposal.decision is not None or proposal.expires_at > now:
            continue
        lead_id, key, proposal_id = proposal.lead_id, proposal.request_key, proposal.id
        if recycle_approvals.decide(
            session,
            proposal_id,
            decision,
            by_email=recycle_approvals.TIMEOUT,
            by_name=recycle_approvals.TIMEOUT,
            at=now,
        ):
            record_action(
                session,
                at=now,
                slack_user_id=recycle_approvals.TIMEOUT,
                email=None,
                action=f"recycle {decision} {proposal_id}",
                lead_id=lead_id,
                outcome=f"{decision}: unanswered for recycle.approval_timeout",
            )
            keys.add(key)
    return keys


def _withdraw_no_longer_due(session: Session, now: datetime) -> set[str]:
    """Open proposals whose lead left the store, was archived, lost its owner or was judged
    not due any more (touched since): closed, never written back."""
    keys: set[str] = set()
    for proposal in recycle_approvals.open_proposals(session):
        lead = session.get(Lead, proposal.lead_id)
        why = None
        if lead is None or lead.archived:
            why = "gone from the CRM"
        elif lead.owner_id is None:
            why = "no owner any more"
        elif not lead.dirty and lead.recycle_reason is None:
            why = "no longer due (touched or changed since)"
        if why is not None:
            recycle_approvals.close(session, [proposal.id], f"withdrawn: {why}", now)
            keys.add(proposal.request_key)
    return keys


def _keys_of(session: Session, ids: Sequence[int]) -> set[str]:
    return {p.request_key for p in recycle_approvals.by_ids(session, ids)}


def _propose(
    sessions: Callable[[], Session],
    agreement: Agreement,
    config: RecycleConfig,
    leads: Sequence[Lead],
    owners: Mapping[str, Owner],
    summary: RecycleSummary,
    now: datetime,
) -> None:
    """Open a proposal for each lead and queue the request (in parts when Slack needs it),
    in one transaction: a run stopped before it proposed nothing, and the next proposes."""
    record_url = agreement.config.crm.record_url
    draft = [
        ProposedLead(
            index,
            lead.display_name,
            lead.company,
            recycle._owner_name(owners, lead.owner_id),
            lead.recycle_reason or "",
            record_url.replace("{id}", lead.id) if record_url else None,
        )
        for index, lead in enumerate(leads)
    ]
    parts = request_parts(draft)
    expires_at = now + config.approval_timeout
    target = config.approval_target
    assert target is not None  # the config requires one with approval
    with session_scope(sessions) as session:
        envelopes: list[Envelope] = []
        for number, part in enumerate(parts, start=1):
            key = request_key(summary.run_id, number, len(parts))
            opened = 0
            for line in part:
                lead = leads[line.proposal_id]
                if recycle_approvals.propose(
                    session,
                    lead_id=lead.id,
                    run_id=summary.run_id,
                    request_key=key,
                    owner_id=lead.owner_id,
                    reason=lead.recycle_reason or "",
                    lead_modified_at=lead.modified_at,
                    at=now,
                    expires_at=expires_at,
                ):
                    opened += 1
                    summary.items.append(recycle._item(lead, owners, {}, {}, "proposed"))
            summary.proposed += opened
            message = request_message(session, agreement, key) if opened else None
            if message is None:
                continue
            envelopes.append(
                Envelope(
                    dedup_key=key,
                    kind=KIND,
                    lead_id="",
                    rule=KIND,
                    level=0,
                    recipient=f"channel:{target}",
                    delivery=Delivery.REPORT,
                    payload=message.to_payload(),
                    due_at=now,
                )
            )
        outbox.enqueue(session, envelopes, now)


def request_message(session: Session, agreement: Agreement, key: str) -> SlackMessage | None:
    """The request message ``key`` as its proposals stand now (None: it lists none)."""
    proposals = recycle_approvals.of_request(session, key)
    if not proposals:
        return None
    config = agreement.config.recycle
    default = config.approval_default if config is not None else "keep"
    leads = _proposed_leads(session, agreement, proposals)
    part, parts = _part_of(key)
    return render_request(
        leads,
        request_key=key,
        expires_at=proposals[0].expires_at,
        default=default,
        timezone=_zone_of(session, agreement, proposals[0].owner_id),
        part=part,
        parts=parts,
    )


def proposed_lead(
    session: Session, agreement: Agreement, proposal: RecycleApproval
) -> ProposedLead:
    return _proposed_leads(session, agreement, [proposal])[0]


def _proposed_leads(
    session: Session, agreement: Agreement, proposals: Sequence[RecycleApproval]
) -> list[ProposedLead]:
    record_url = agreement.config.crm.record_url
    out = []
    for p in proposals:
        lead = session.get(Lead, p.lead_id)
        owner = session.get(Owner, p.owner_id) if p.owner_id else None
        out.append(
            ProposedLead(
                p.id,
                lead.display_name if lead is not None else p.lead_id,
                lead.company if lead is not None else None,
                owner.display_name if owner is not None else p.owner_id or "nobody",
                p.reason,
                record_url.replace("{id}", p.lead_id) if record_url else None,
                decision=p.decision,
                decided_by=p.decided_by_name,
                decided_at=p.decided_at,
                closed_at=p.closed_at,
                outcome=p.outcome,
            )
        )
    return out


def _zone_of(session: Session, agreement: Agreement, owner_id: str | None) -> str:
    """The request's time zone: its first lead's team's (a channel has no zone of its own)."""
    owner = session.get(Owner, owner_id) if owner_id else None
    team = agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
    return team.calendar.timezone


def zone_of_proposal(session: Session, agreement: Agreement, proposal: RecycleApproval) -> str:
    return _zone_of(session, agreement, proposal.owner_id)


def _update_requests(
    sessions: Callable[[], Session],
    agreement: Agreement,
    keys: set[str],
    slack: Callable[[], object] | None,
) -> None:
    """Each changed request message that Slack has, updated in place; a failure is logged
    (the next change updates it again), never fatal to the run."""
    with session_scope(sessions) as session:
        updates = []
        for key in sorted(keys):
            row = session.scalars(select(OutboxRow).where(OutboxRow.dedup_key == key)).first()
            if row is None or not row.slack_channel or not row.slack_ts:
                continue  # not sent yet: nothing to update
            message = request_message(session, agreement, key)
            if message is not None:
                updates.append((row.slack_channel, row.slack_ts, message))
    if not updates or slack is None:
        return
    try:
        client = slack()
    except ConfigError as e:
        log.warning("recycle approval requests not updated: %s", e)
        return
    update = getattr(client, "update_message", None)
    if update is None:
        return
    for channel, ts, message in updates:
        try:
            update(channel, ts, message.text, blocks=message.blocks)
        except SlaWorkerError as e:
            log.warning("could not update the recycle approval request %s: %s", ts, e)
