"""Evaluate: run the SLA engine on leads that changed or whose next deadline has come.

Findings and the notifications they cause are written in one transaction per batch, so a
crash leaves either both or neither; the outbox's unique dedup key makes a re-run harmless.
It never sends anything and never calls the CRM.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from worker.config import Agreement, Team
from worker.notices import OVERDUE
from worker.pipeline.context import Context
from worker.pipeline.notifications import Draft, LeadFacts, drafts_for
from worker.pipeline.summary import Summary
from worker.pipeline.timing import direct_due_at, next_digest_at
from worker.sla import (
    Lead,
    LeadEvaluation,
    RuleState,
    StatusChange,
    Touch,
    evaluate_lead,
    select_policy,
)
from worker.store import acknowledgements, judgements, outbox, planner_stats, queries, snoozes
from worker.store.db import plan_each_query, session_scope
from worker.store.leases import alone
from worker.store.outbox import Delivery, Envelope

log = logging.getLogger(__name__)


@dataclass
class EvaluateSummary(Summary):
    #: Skipped: another worker is evaluating (a lease, as for sync).
    already_running: bool = False
    leads: int = 0
    skipped: int = 0
    notifications: int = 0
    breached: int = 0
    #: Leads marked to be judged again because the agreement (config) changed.
    rejudged: int = 0


def run(
    ctx: Context, now: datetime, *, fan_out: Callable[[], None] | None = None
) -> EvaluateSummary:
    """The stage: judge every due lead under the context's agreement.

    On PostgreSQL any number of workers share a pass: each batch is claimed with ``FOR UPDATE
    SKIP LOCKED``, so two workers never judge the same lead at once and neither waits for the
    other; ``fan_out`` is called once when a pass finds more than a batch due, so that the
    caller can start more workers on it (the Celery task queues helpers). On SQLite, which has
    no row locks, one worker evaluates at a time (a lease, as for sync)."""
    if ctx.engine.dialect.name == "postgresql":
        return evaluate(ctx.agreement, ctx.sessions, now, claim=True, fan_out=fan_out)
    return alone(
        ctx.sessions,
        "evaluate",
        ctx.clock,
        lambda lease: evaluate(ctx.agreement, ctx.sessions, now, heartbeat=lease.renew),
        when_busy=lambda: EvaluateSummary(already_running=True),
    )


def engine_inputs(bundle: queries.LeadBundle) -> tuple[Lead, list[Touch]]:
    """Store rows → the engine's plain dataclasses."""
    row = bundle.lead
    lead = Lead(
        id=row.id,
        created_at=row.created_at,
        owner_id=row.owner_id,
        assigned_at=row.owner_assigned_at or row.created_at,
        status=row.status,
        lifecycle_stage=row.lifecycle_stage,
        priority=row.priority,
        source=row.source,
        score=row.score,
        status_history=tuple(StatusChange(c.at, c.status) for c in bundle.status_history),
    )
    touches = [
        Touch(
            at=t.occurred_at,
            kind=t.kind,
            owner_id=t.owner_id,
            duration=timedelta(milliseconds=t.duration_ms),
            direction=t.direction,
            status=t.status,
        )
        for t in bundle.touches
    ]
    return lead, touches


def kept_clock(
    lead: Lead, first_assigned_at: datetime | None, policy: str, agreement: Agreement
) -> Lead:
    """``lead`` with its clocks started at its first assignment when its policy says a
    reassignment does not restart them (``reassign_restarts_first_touch: false``); as it is
    otherwise. The engine starts every clock at ``assigned_at``: the CRM's owner-assigned date,
    which a reassignment moves."""
    if first_assigned_at is None or lead.assigned_at is None:
        return lead
    if first_assigned_at >= lead.assigned_at or policy not in _clocks_kept(agreement):
        return lead
    return replace(lead, assigned_at=first_assigned_at)


def _clocks_kept(agreement: Agreement) -> frozenset[str]:
    """The policies whose clocks a reassignment does not restart."""
    return frozenset(
        p.name for p in agreement.config.policies if not p.reassign_restarts_first_touch
    )


def lead_facts(bundle: queries.LeadBundle, record_url: str | None) -> LeadFacts:
    row, owner = bundle.lead, bundle.owner
    return LeadFacts(
        lead_id=row.id,
        lead_name=bundle.lead_name,
        company=row.company,
        priority=row.priority,
        record_url=record_url.replace("{id}", row.id) if record_url else None,
        owner_email=owner.email if owner is not None and not owner.archived else None,
        rep_name=bundle.owner_name,
        status=row.status,
    )


def evaluate_bundle(
    bundle: queries.LeadBundle,
    agreement: Agreement,
    now: datetime,
    complete: tuple[list[str], datetime | None] | None = None,
) -> tuple[LeadEvaluation, Team] | None:
    """Judge one lead with its team's calendar; None when there is nothing to judge (no
    owner, archived). ``complete``: what it lacks and since when it is complete, as just
    found (:func:`completeness`); by default as stored at its last evaluation."""
    row = bundle.lead
    if row.archived or row.owner_id is None:
        return None
    missing, complete_since = complete or (row.missing_fields, row.complete_since)
    marketing = agreement.config.marketing
    waits_for_completeness = marketing is not None and marketing.incomplete_clock == "wait"
    if waits_for_completeness and missing:
        return None  # its clocks start when marketing completes it
    owner = bundle.owner
    team = agreement.team_for(
        owner.email if owner is not None else None, owner.teams if owner is not None else []
    )
    lead, touches = engine_inputs(bundle)
    policy = select_policy(lead, agreement.policies)
    lead = kept_clock(lead, row.first_assigned_at, policy.name, agreement)
    if waits_for_completeness and complete_since and lead.assigned_at:
        lead = replace(lead, assigned_at=max(lead.assigned_at, complete_since))
    evaluation = evaluate_lead(
        lead, touches, policy, team.calendar, agreement.touch_rules, agreement.escalation, now
    )
    return evaluation, team


def evaluate(
    agreement: Agreement,
    sessions: Callable[[], Session],
    now: datetime,
    *,
    batch_size: int = 500,
    heartbeat: Callable[[], None] = lambda: None,
    claim: bool = False,
    fan_out: Callable[[], None] | None = None,
) -> EvaluateSummary:
    """Evaluate every due lead, batch by batch, each batch one transaction; ``heartbeat``
    before each (the caller renews its lease there). A batch reads its leads as plain rows in
    a few queries and writes them back in a few statements: the leads, the findings that
    changed, the notices not already in the outbox. ``claim``: lock each batch's leads, skipping
    those another pass holds (PostgreSQL); ``fan_out`` is called once if the first batch is
    full."""
    summary = EvaluateSummary()
    record_url = agreement.config.crm.record_url
    with session_scope(sessions) as session:
        summary.rejudged = queries.apply_agreement(session, agreement.fingerprint, now)
    if summary.rejudged:
        log.info("the agreement changed: all %d tracked leads are judged again", summary.rejudged)
    walk = queries.DueWalk()
    grew = False  # whether the last batch added findings or notices
    for batches in itertools.count():
        if (grew and batches < STATISTICS_EVERY) or batches % STATISTICS_EVERY == 0:
            planner_stats.refresh(sessions)
        heartbeat()
        with session_scope(sessions) as session:
            plan_each_query(session)
            ids = queries.next_due_ids(session, now, batch_size, walk, claim=claim)
            if not ids:
                return summary
            if fan_out is not None and len(ids) == batch_size:
                fan_out()
                fan_out = None
            batch = _Batch(now, outbox.existing_keys(session, ids))
            findings = queries.findings_for(session, ids)
            acknowledged = acknowledgements.for_leads(session, ids)
            snoozed = snoozes.for_leads(session, ids)
            for bundle in queries.load_bundles(session, ids):
                lead_id = bundle.lead.id
                _evaluate_one(
                    session,
                    bundle,
                    findings[lead_id],
                    agreement,
                    record_url,
                    batch,
                    summary,
                    acknowledged.get(lead_id, set()),
                    snoozed.get(lead_id, {}),
                )
            judgements.save_leads(session, batch.leads)
            judgements.save_findings(session, batch.findings)
            written = outbox.enqueue(session, batch.envelopes(agreement), now)
            summary.notifications += written
            grew = bool(batch.findings) or written > 0
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns


#: Batches between looks at the store's planner statistics (``planner_stats``; a look that
#: finds nothing stale costs a few ms): a first pass grows the outbox and the findings from
#: nothing, and a table the planner thinks empty or unknown is scanned whole for each batch's
#: lookups, each scan comparing every row with the batch's 500 ids. So the first batches look
#: after each batch that added findings or notices — while the tables double every batch or
#: two; waiting 20 batches made a first pass of 100,000 leads 2.6 times slower — and every 20th
#: batch looks, the first included (what sync left). A pass that only re-judges changed leads,
#: adding nothing, looks once in 20 batches: a look at each was 2–3 % of such a pass.
STATISTICS_EVERY = 20


class _Batch:
    """What a batch writes: each judged lead's bookkeeping, the findings whose verdict changed
    and the notices they cause (drafted only if not ``written`` to the outbox already: the
    batch's keys there, read before its leads are judged)."""

    def __init__(self, now: datetime, written: set[str]) -> None:
        self.now = now
        self.written = written
        self.leads: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        self.drafts: list[tuple[Draft, str, Team]] = []

    def judged(self, row: queries.Row, **values: Any) -> None:
        self.leads.append({"id": row.id, "revision": row.revision, **values})

    def envelopes(self, agreement: Agreement) -> list[Envelope]:
        schedule = _Schedule(agreement, self.now)
        return [schedule.envelope(draft, lead_id, team) for draft, lead_id, team in self.drafts]


def _evaluate_one(
    session: Session,
    bundle: queries.LeadBundle,
    previous: dict[str, queries.Row],
    agreement: Agreement,
    record_url: str | None,
    batch: _Batch,
    summary: EvaluateSummary,
    acknowledged: set[acknowledgements.Breach],
    snoozed: dict[snoozes.Breach, datetime],
) -> None:
    """Judge one lead into ``batch``: its bookkeeping, changed findings and notices (none
    more for a breach someone ``acknowledged``, no reminder to the rep inside a snooze)."""
    row, now = bundle.lead, batch.now
    missing, complete_since = completeness(row, agreement)
    if _owner_not_synced_yet(bundle, now):
        # Sync reads owners before leads, so a lead assigned to a rep added meanwhile can be
        # stored before its owner. Judged now, its reminder would go to the manager in the
        # rep's place; it waits (dirty) for the next sync to bring the owner in.
        summary.skipped += 1
        return
    tracked = {"missing_fields": missing, "complete_since": complete_since}
    try:
        judged = evaluate_bundle(bundle, agreement, now, (missing, complete_since))
    except (ValueError, TypeError) as e:
        # Bad CRM data for one lead must not stop the run: log it, park the lead until it
        # changes again (dirty is cleared, no next check), carry on.
        log.error("lead %s: cannot evaluate (%s); skipped until it changes", row.id, e)
        batch.judged(row, next_check_at=None, recycle_reason=None, **tracked)
        summary.skipped += 1
        return
    if judged is None:
        batch.judged(row, next_check_at=None, recycle_reason=None, **tracked)
        summary.skipped += 1
        return
    evaluation, team = judged
    summary.leads += 1
    announced = {rule: f.breached_deadline_at for rule, f in previous.items()}
    drafts = drafts_for(
        evaluation,
        lead_facts(bundle, record_url),
        team,
        agreement.escalation,
        announced,
        _paged(session, row.id, evaluation, announced),
        acknowledged,
        snoozed,
        batch.written,
    )
    batch.drafts += [(draft, row.id, team) for draft in drafts]
    for result in evaluation.rules:
        before = previous.get(result.rule.value)
        if result.state is RuleState.BREACHED:
            summary.breached += 1
            breached_at = result.deadline_at
        elif result.state is RuleState.MET_LATE:
            breached_at = before.breached_deadline_at if before is not None else None
        else:
            breached_at = None
        verdict = (  # in the order of judgements.FINDING_FIELDS
            evaluation.policy,
            result.state.value,
            result.started_at,
            result.deadline_at,
            result.met_at,
            result.detail,
            breached_at,
        )
        if before is None or _verdict_of(before) != verdict:
            batch.findings.append(
                {
                    "lead_id": row.id,
                    "rule": result.rule.value,
                    "evaluated_at": now,
                    **dict(zip(judgements.FINDING_FIELDS, verdict, strict=True)),
                }
            )
    batch.judged(
        row,
        next_check_at=evaluation.next_check_at,
        recycle_reason=evaluation.recycle_reason if evaluation.recycle_due else None,
        **tracked,
    )


#: A stored finding's verdict, as a tuple to compare with one just reached.
_verdict_of = operator.attrgetter(*judgements.FINDING_FIELDS)


def _paged(
    session: Session,
    lead_id: str,
    evaluation: LeadEvaluation,
    announced: dict[str, datetime | None],
) -> dict[str, set[str]]:
    """For each rule just met late on an announced deadline: who its breach reached (a query
    only for those leads, which are few)."""
    return {
        r.rule.value: outbox.paged(
            session, f"{lead_id}|{r.rule.value}|{r.deadline_at.isoformat()}|", OVERDUE
        )
        for r in evaluation.rules
        if r.state is RuleState.MET_LATE
        and r.deadline_at is not None
        and announced.get(r.rule.value) == r.deadline_at
    }


#: How long a lead waits for its owner to be synced before it is judged without one (the
#: owner's notices then go to the team's manager): an owner that never appears is not a race.
OWNER_GRACE = timedelta(minutes=15)


def _owner_not_synced_yet(bundle: queries.LeadBundle, now: datetime) -> bool:
    row = bundle.lead
    recent = now - row.modified_at < OWNER_GRACE  # the assignment is a CRM change
    return row.owner_id is not None and bundle.owner is None and not row.archived and recent


class _Schedule:
    """How and when each notice of a batch goes out (digest or direct, due time). What is the
    same for every notice of a team in the batch is worked out once: a first pass schedules
    hundreds of thousands of notices."""

    def __init__(self, agreement: Agreement, now: datetime) -> None:
        self.config = agreement.config
        self.now = now
        self.digest_minutes = self.config.schedules.digest_minutes()
        self._due: dict[tuple[str, bool, datetime | None], datetime] = {}

    def envelope(self, draft: Draft, lead_id: str, team: Team) -> Envelope:
        config = self.config
        level = config.escalation[draft.level] if draft.kind in OVERDUE else None
        quiet = config.notifications.quiet_hours and not (level and level.send_outside_hours)
        digest = level is not None and level.digest
        # A digest takes the first digest time after the notice fell due, not after it was
        # found: one that fell due while no worker ran takes the slot it missed (then due, so
        # sent at once). A direct notice waits out the grouping window (and quiet hours).
        since = min(draft.since, self.now) if digest else None
        key = (team.name, quiet, since)
        due_at = self._due.get(key)
        if due_at is None:
            if since is not None:
                due_at = next_digest_at(since, team.calendar, self.digest_minutes)
            else:
                due_at = direct_due_at(
                    self.now,
                    team.calendar,
                    group_wait=config.notifications.group_wait,
                    quiet=quiet,
                )
            self._due[key] = due_at
        payload = draft.notice.to_payload()
        payload["quiet"] = quiet  # the schedule's decision, not the draft's
        return Envelope(
            dedup_key=draft.dedup_key,
            kind=draft.kind,
            lead_id=lead_id,
            rule=draft.rule,
            level=draft.level,
            recipient=draft.recipient,
            delivery=Delivery.DIGEST if digest else Delivery.DIRECT,
            payload=payload,
            due_at=due_at,
        )


def missing_fields(row: queries.Row, required: Sequence[str]) -> list[str]:
    """The required CRM properties a lead lacks (empty or blank counts as missing)."""
    properties = row.properties or {}
    return [name for name in required if not str(properties.get(name) or "").strip()]


def completeness(row: queries.Row, agreement: Agreement) -> tuple[list[str], datetime | None]:
    """What a lead lacks, and since when it is complete: the first time it is seen complete
    after being incomplete, at the CRM change that completed it; a lead complete from the
    start, at its creation."""
    marketing = agreement.config.marketing
    missing = missing_fields(row, marketing.required_fields) if marketing else []
    if missing:
        return missing, None
    if row.complete_since is not None:
        return missing, row.complete_since
    return missing, row.modified_at if row.missing_fields else row.created_at
