"""Recycle: hand leads the engine judged stale back to marketing nurturing in the CRM.

A run takes the leads whose latest evaluation says recycle is due, leaves out any with a
future meeting or in a protected lifecycle stage, stops at the per-run cap, re-reads each lead
from the CRM and skips it if it changed since it was judged or has an open deal, then writes
the configured
properties. Every write is audited (before and after values, reason, run id) before it is
made, so a run can be undone (:func:`undo`); ``dry_run`` writes nothing anywhere. The rep and
marketing's channel get a notice through the outbox. It never decides what is stale: that is
the engine's verdict, stored by evaluate.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.config import Agreement, RecycleConfig
from worker.crm.client import CrmClient
from worker.crm.records import CrmLead, WriteResult
from worker.notices import Notice, NoticeKind
from worker.pipeline.context import Context
from worker.pipeline.summary import DETAIL, Summary
from worker.pipeline.timing import direct_due_at
from worker.store import outbox
from worker.store.db import session_scope
from worker.store.leases import alone
from worker.store.models import Lead, Owner, RecycleAudit, Touch, TouchLead
from worker.store.outbox import Delivery, Envelope

log = logging.getLogger(__name__)

#: The CRM property that holds the owner (HubSpot's; a Salesforce client maps its own).
OWNER_PROPERTY = "hubspot_owner_id"


@dataclass
class RecycleItem:
    lead_id: str
    name: str
    owner: str
    reason: str
    before: dict[str, str]
    after: dict[str, str]
    outcome: str  # recycled | would recycle | skipped: … | failed: …


@dataclass
class RecycleSummary(Summary):
    run_id: str
    dry_run: bool
    due: int = 0
    recycled: int = 0
    skipped: int = 0
    failed: int = 0
    waiting: int = 0  # due but over the per-run cap
    #: ``recycle.approval: required``: leads proposed (a request posted) instead of written.
    proposed: int = 0
    #: Skipped: another worker is recycling (a lease, as for sync).
    already_running: bool = False
    #: ``--undo``: no run has this id.
    unknown_run: bool = False
    items: list[RecycleItem] = field(default_factory=list, metadata=DETAIL)


#: A lead to write back: the stored lead, the CRM values before, the values to write.
_Planned = dict[str, tuple[Lead, dict[str, str], dict[str, str]]]


def run(ctx: Context, now: datetime, *, dry_run: bool = False) -> RecycleSummary:
    """The stage: one recycle run against the context's CRM, unless another worker is
    recycling (two runs would each write and announce the same leads). A dry run writes
    nothing and needs no lease."""
    if dry_run:
        return recycle(ctx.crm, ctx.sessions, ctx.agreement, now, dry_run=True)
    return alone(
        ctx.sessions,
        "recycle",
        ctx.clock,
        lambda _: recycle(ctx.crm, ctx.sessions, ctx.agreement, now, slack=lambda: ctx.slack),
        when_busy=lambda: RecycleSummary(new_run_id(now), False, already_running=True),
    )


def run_undo(ctx: Context, now: datetime, run_id: str, *, dry_run: bool = False) -> RecycleSummary:
    """Write back the values recycle run ``run_id`` replaced (under the recycle lease); a dry
    run only lists what would be restored."""
    if dry_run:
        return undo(ctx.crm, ctx.sessions, run_id, now, dry_run=True)
    return alone(
        ctx.sessions,
        "recycle",
        ctx.clock,
        lambda _: undo(ctx.crm, ctx.sessions, run_id, now),
        when_busy=lambda: RecycleSummary(run_id, False, already_running=True),
    )


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def recycle(
    crm: CrmClient,
    sessions: Callable[[], Session],
    agreement: Agreement,
    now: datetime,
    *,
    dry_run: bool = False,
    slack: Callable[[], object] | None = None,
) -> RecycleSummary:
    """One recycle run (see the module docstring). With ``recycle.approval: required`` (and
    not a dry run) it writes back only approved leads and proposes the others
    (``recycle_approval``); ``slack`` gives the client that updates the request messages."""
    summary = RecycleSummary(new_run_id(now), dry_run)
    config = agreement.config.recycle
    if config is None:
        return summary
    if config.approval == "required" and not dry_run:
        from worker.pipeline import recycle_approval  # it builds on this module's steps

        return recycle_approval.recycle_approved(crm, sessions, agreement, now, summary, slack)
    eligible, owners = _eligible_leads(sessions, config, now, summary)
    if not eligible:
        return summary
    planned = _plan_writes(crm, sessions, config, eligible, owners, summary)
    if dry_run:
        for lead, before, after in planned.values():
            summary.items.append(_item(lead, owners, before, after, "would recycle"))
        summary.recycled = len(planned)  # in a dry run: how many would be
        return summary
    write_back(crm, sessions, agreement, config, planned, owners, summary, now)
    return summary


def write_back(
    crm: CrmClient,
    sessions: Callable[[], Session],
    agreement: Agreement,
    config: RecycleConfig,
    planned: _Planned,
    owners: Mapping[str, Owner],
    summary: RecycleSummary,
    now: datetime,
    *,
    also: Callable[[Session, list[str]], None] | None = None,
) -> None:
    """Audit, write and record the planned leads; ``also`` runs in the transaction that
    records the outcomes, with the ids of the leads written back."""
    if not planned:
        return
    _audit(sessions, summary.run_id, planned, now)
    result = crm.update_leads({lead_id: after for lead_id, (_, _, after) in planned.items()})
    _record_outcomes(sessions, agreement, config, planned, owners, result, summary, now, also)


def _eligible_leads(
    sessions: Callable[[], Session],
    config: RecycleConfig,
    now: datetime,
    summary: RecycleSummary,
    *,
    leaving_out: Collection[str] = (),
    first: Collection[str] = (),
) -> tuple[list[Lead], dict[str, Owner]]:
    """Leads the engine judged due, minus those with a booked meeting or in a protected
    lifecycle stage, up to the per-run cap (the rest wait for the next run). Leads in
    ``leaving_out`` are not considered; those in ``first`` go before the others."""
    with session_scope(sessions) as session:
        due = list(
            session.scalars(
                select(Lead)
                .where(
                    Lead.recycle_reason.is_not(None),
                    Lead.dirty.is_(False),
                    Lead.archived.is_(False),
                    Lead.owner_id.is_not(None),
                )
                .order_by(Lead.modified_at, Lead.id)
            ).all()
        )
        meetings = _leads_with_future_meetings(session, [lead.id for lead in due], now)
        owners = {o.id: o for o in session.scalars(select(Owner)).all()}
    summary.due = len(due)
    due = [lead for lead in due if lead.id not in leaving_out]
    due.sort(key=lambda lead: lead.id not in first)  # stable: the first ones, in order
    eligible: list[Lead] = []
    for lead in due:
        skip = None
        if lead.id in meetings:
            skip = "a meeting is booked"
        elif (lead.lifecycle_stage or "") in config.skip_lifecycle_stages:
            skip = f"lifecycle stage {lead.lifecycle_stage}"
        if skip:
            summary.skipped += 1
            summary.items.append(_item(lead, owners, {}, {}, f"skipped: {skip}"))
        else:
            eligible.append(lead)
    if len(eligible) > config.max_per_run:
        summary.waiting = len(eligible) - config.max_per_run
        log.warning(
            "recycle cap reached: %d leads due, %d recycled this run (recycle.max_per_run), "
            "%d wait for the next run",
            len(eligible),
            config.max_per_run,
            summary.waiting,
        )
        eligible = eligible[: config.max_per_run]
    return eligible, owners


def _plan_writes(
    crm: CrmClient,
    sessions: Callable[[], Session],
    config: RecycleConfig,
    eligible: list[Lead],
    owners: Mapping[str, Owner],
    summary: RecycleSummary,
) -> _Planned:
    """Re-read each lead from the CRM; skip any gone, with an open deal, or changed since it
    was judged; the rest get the values to write and the values they replace."""
    ids = [lead.id for lead in eligible]
    fresh = crm.get_leads(ids)
    with_open_deals = crm.leads_with_open_deals(ids)
    unfinished = _unfinished_writes(sessions, ids)
    planned: _Planned = {}
    for lead in eligible:
        current = fresh.get(lead.id)
        skip = None
        if current is None:
            skip = "gone from the CRM"
        elif lead.id in with_open_deals:
            skip = "it has an open deal"
        elif current.modified_at > lead.modified_at:
            # Touched, reassigned or edited since it was judged: judge it again first.
            skip = "changed in the CRM since it was judged"
        if skip is not None or current is None:
            summary.skipped += 1
            summary.items.append(_item(lead, owners, {}, {}, f"skipped: {skip}"))
            continue
        after = _properties_to_write(config, lead.recycle_reason or "")
        # After a run that stopped between HubSpot's "clear" and "set" batches the CRM holds
        # half-written values (an empty lifecycle stage): the true before-state is that run's.
        earlier = unfinished.get(lead.id, {})
        before = {name: earlier.get(name, _current_value(current, name)) for name in after}
        planned[lead.id] = (lead, before, after)
    return planned


def _unfinished_writes(
    sessions: Callable[[], Session], lead_ids: list[str]
) -> dict[str, dict[str, str]]:
    """Lead id → the before-state an earlier run recorded and never finished writing (its
    audit is still ``writing``: the run stopped mid-write)."""
    with session_scope(sessions) as session:
        audits = session.scalars(
            select(RecycleAudit)
            .where(RecycleAudit.lead_id.in_(lead_ids), RecycleAudit.outcome == "writing")
            .order_by(RecycleAudit.at.desc(), RecycleAudit.id.desc())
        ).all()
        return {audit.lead_id: dict(audit.before) for audit in audits}


def _record_outcomes(
    sessions: Callable[[], Session],
    agreement: Agreement,
    config: RecycleConfig,
    planned: _Planned,
    owners: Mapping[str, Owner],
    result: WriteResult,
    summary: RecycleSummary,
    now: datetime,
    also: Callable[[Session, list[str]], None] | None = None,
) -> None:
    """Each audit row gets its outcome; a recycled lead is marked for the next sync and its
    rep and marketing hear of it; ``also`` is told the recycled leads, in the same
    transaction."""
    with session_scope(sessions) as session:
        audits = {
            a.lead_id: a
            for a in session.scalars(
                select(RecycleAudit).where(RecycleAudit.run_id == summary.run_id)
            ).all()
        }
        envelopes: list[Envelope] = []
        for lead_id, (lead, before, after) in planned.items():
            audit = audits[lead_id]
            if lead_id in result.failed:
                audit.outcome, audit.detail = "failed", result.failed[lead_id]
                summary.failed += 1
                summary.items.append(
                    _item(lead, owners, before, after, f"failed: {result.failed[lead_id]}")
                )
                log.error("recycle of lead %s failed: %s", lead_id, result.failed[lead_id])
                continue
            audit.outcome = "done"
            stored = session.get(Lead, lead_id)
            if stored is not None:
                stored.mark_dirty()  # the next sync brings the CRM's new state
                stored.recycle_reason = None
            summary.recycled += 1
            summary.items.append(_item(lead, owners, before, after, "recycled"))
            envelopes += _notices(agreement, config, lead, owners, summary.run_id, now)
        outbox.enqueue(session, envelopes, now)
        if also is not None:
            also(session, [lead_id for lead_id in planned if lead_id not in result.failed])


def undo(
    crm: CrmClient,
    sessions: Callable[[], Session],
    run_id: str,
    now: datetime,
    *,
    dry_run: bool = False,
) -> RecycleSummary:
    """Write back the values a run replaced, for each lead the CRM still shows as the run left
    it: a lead changed since (reassigned, re-qualified) is skipped and listed, never
    overwritten. The audit rows are marked undone. A dry run lists and writes nothing."""
    summary = RecycleSummary(run_id, dry_run=dry_run)
    with session_scope(sessions) as session:
        audits = list(session.scalars(select(RecycleAudit).where(RecycleAudit.run_id == run_id)))
        names = {a.lead_id: _stored_name(session, a.lead_id) for a in audits}
    if not audits:
        summary.unknown_run = True
        return summary
    audits = [a for a in audits if a.outcome in ("done", "writing")]
    current = crm.get_leads([a.lead_id for a in audits]) if audits else {}
    restore: list[RecycleAudit] = []
    for audit in audits:
        item = RecycleItem(
            audit.lead_id,
            names[audit.lead_id],
            audit.owner_id or "none",
            audit.reason,
            dict(audit.after),
            dict(audit.before),
            "would restore" if dry_run else "restored",
        )
        changed = _changed_since(current.get(audit.lead_id), audit)
        if changed:
            summary.skipped += 1
            item.outcome = f"skipped: {changed}"
        else:
            restore.append(audit)
        summary.items.append(item)
    if dry_run or not restore:
        summary.recycled = len(restore) if dry_run else 0
        return summary
    result = crm.update_leads({a.lead_id: dict(a.before) for a in restore})
    failed_items = {i.lead_id: i for i in summary.items}
    with session_scope(sessions) as session:
        for audit in restore:
            row = session.get(RecycleAudit, audit.id)
            assert row is not None
            if audit.lead_id in result.failed:
                row.detail = f"undo failed: {result.failed[audit.lead_id]}"
                failed_items[audit.lead_id].outcome = f"failed: {result.failed[audit.lead_id]}"
                summary.failed += 1
                continue
            row.outcome = "undone"
            row.detail = f"undone at {now.isoformat()}"
            stored = session.get(Lead, audit.lead_id)
            if stored is not None:
                stored.mark_dirty()
            summary.recycled += 1
    return summary


def _stored_name(session: Session, lead_id: str) -> str:
    lead = session.get(Lead, lead_id)
    return lead.display_name if lead is not None else "(no longer stored)"


def _changed_since(lead: CrmLead | None, audit: RecycleAudit) -> str | None:
    """Why the CRM no longer shows the lead as the run left it (None: it does). A run that
    stopped mid-write (``writing``) may have left a property cleared or untouched too."""
    if lead is None:
        return "no longer in the CRM"
    changed = []
    for name, written in audit.after.items():
        value = _current_value(lead, name)
        allowed = {written}
        if audit.outcome == "writing":
            allowed |= {"", str(audit.before.get(name) or "")}
        if value not in allowed:
            changed.append(name)
    if not changed:
        return None
    return f"changed in the CRM since the run ({', '.join(sorted(changed))})"


def _properties_to_write(config: RecycleConfig, reason: str) -> dict[str, str]:
    after = dict(config.set)
    if config.clear_owner:
        after[OWNER_PROPERTY] = ""
    if config.reason_property:
        after[config.reason_property] = reason
    return after


def _current_value(lead: CrmLead, name: str) -> str:
    value = lead.properties.get(name)
    if value is None and name == OWNER_PROPERTY:
        value = lead.owner_id
    return value or ""


def _audit(
    sessions: Callable[[], Session],
    run_id: str,
    planned: Mapping[str, tuple[Lead, dict[str, str], dict[str, str]]],
    now: datetime,
) -> None:
    """Record every write before it is made: a crash mid-run leaves rows in ``writing``,
    which undo treats as written. An earlier unfinished write of the same lead is taken over
    by this one (its before-state was carried over), so no undo restores it twice."""
    with session_scope(sessions) as session:
        session.execute(
            update(RecycleAudit)
            .where(RecycleAudit.lead_id.in_(list(planned)), RecycleAudit.outcome == "writing")
            .values(outcome="replaced", detail=f"finished by run {run_id}")
        )
        for lead_id, (lead, before, after) in planned.items():
            session.add(
                RecycleAudit(
                    run_id=run_id,
                    lead_id=lead_id,
                    owner_id=lead.owner_id,
                    reason=lead.recycle_reason or "",
                    before=before,
                    after=after,
                    outcome="writing",
                    detail="",
                    at=now,
                )
            )


def _leads_with_future_meetings(session: Session, lead_ids: list[str], now: datetime) -> set[str]:
    if not lead_ids:
        return set()
    return set(
        session.scalars(
            select(TouchLead.lead_id)
            .join(Touch, Touch.id == TouchLead.touch_id)
            .where(
                TouchLead.lead_id.in_(lead_ids),
                Touch.kind == "meeting",
                Touch.occurred_at > now,
            )
        ).all()
    )


def _owner_name(owners: Mapping[str, Owner], owner_id: str | None) -> str:
    owner = owners.get(owner_id or "")
    return owner.display_name if owner is not None else owner_id or "nobody"


def _item(
    lead: Lead,
    owners: Mapping[str, Owner],
    before: dict[str, str],
    after: dict[str, str],
    outcome: str,
) -> RecycleItem:
    return RecycleItem(
        lead.id,
        lead.display_name,
        _owner_name(owners, lead.owner_id),
        lead.recycle_reason or "",
        before,
        after,
        outcome,
    )


def _notices(
    agreement: Agreement,
    config: RecycleConfig,
    lead: Lead,
    owners: Mapping[str, Owner],
    run_id: str,
    now: datetime,
) -> list[Envelope]:
    """The rep and marketing hear of every recycled lead; one message each per run, since
    notices due together for one recipient are grouped by deliver."""
    owner = owners.get(lead.owner_id or "")
    team = agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
    record_url = agreement.config.crm.record_url
    notice = Notice(
        kind=NoticeKind.RECYCLED,
        rule="recycle",
        lead_id=lead.id,
        lead_name=lead.display_name,
        company=lead.company,
        priority=lead.priority,
        record_url=record_url.replace("{id}", lead.id) if record_url else None,
        deadline_at=now,
        detail=f"{lead.recycle_reason} (run {run_id})",
        level=0,
        policy="",
        rep_name=_owner_name(owners, lead.owner_id),
        timezone=team.calendar.timezone,
        team=team.name,
    )
    recipients = []
    if owner is not None and owner.email:
        recipients.append(f"email:{owner.email.lower()}")
    if config.notify_channel:
        recipients.append(f"channel:{config.notify_channel}")
    due_at = direct_due_at(
        now,
        team.calendar,
        group_wait=agreement.config.notifications.group_wait,
        quiet=agreement.config.notifications.quiet_hours,
    )
    return [
        Envelope(
            dedup_key=f"{lead.id}|recycle|{run_id}|{recipient}",
            kind=NoticeKind.RECYCLED,
            lead_id=lead.id,
            rule="recycle",
            level=0,
            recipient=recipient,
            delivery=Delivery.DIRECT,
            payload=notice.to_payload(),
            due_at=due_at,
        )
        for recipient in recipients
    ]
