"""Which notices an evaluation causes, and to whom: a pure mapping from engine results to drafts.

A :class:`Draft` is a notice addressed to one recipient, not yet scheduled (the evaluate stage
decides its delivery and due time and enqueues it). Each draft has a dedup key built from
(lead, rule, deadline, level, repeat, recipient), so the
same verdict written twice is delivered once, and a new deadline (owner change, policy change)
is a new notification. No I/O: the evaluate stage writes the drafts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from worker.config import Team
from worker.notices import SNOOZABLE, Notice, NoticeKind
from worker.sla import EscalationPolicy, LeadEvaluation, RuleState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeadFacts:
    """What a message says about the lead and its owner, snapshotted at evaluation."""

    lead_id: str
    lead_name: str
    company: str | None
    priority: str | None
    record_url: str | None
    owner_email: str | None
    rep_name: str
    #: The CRM status: for an early return it is the rep's stated reason (UNQUALIFIED, …).
    status: str | None = None


@dataclass(frozen=True)
class Draft:
    dedup_key: str
    kind: NoticeKind
    rule: str
    level: int
    recipient: str  # "email:<address>" or "channel:<#name>"
    #: When the notice fell due (a warning's or escalation level's time, a repeat's), which
    #: may be long before it was found (no worker ran): a digest takes the first slot after it.
    since: datetime
    deadline_at: datetime
    detail: str
    policy: str
    facts: LeadFacts
    team: str
    timezone: str

    @property
    def notice(self) -> Notice:
        """What the notice says. Built on demand: a pass drafts every notice a verdict calls
        for, and most of them are in the outbox already (their dedup keys say so), so building
        each one's notice up front was a quarter of an incremental pass."""
        facts = self.facts
        return Notice(
            kind=self.kind,
            rule=self.rule,
            lead_id=facts.lead_id,
            lead_name=facts.lead_name,
            company=facts.company,
            priority=facts.priority,
            record_url=facts.record_url,
            deadline_at=self.deadline_at,
            detail=self.detail,
            level=self.level,
            policy=self.policy,
            rep_name=facts.rep_name,
            timezone=self.timezone,
            team=self.team,
        )


def resolve_recipient(who: str, facts: LeadFacts, team: Team) -> str | None:
    """A configured recipient (``rep``, ``manager``, ``channel``, ``channel:#x``, an e-mail)
    as an outbox address; a rep without an e-mail falls back to the team's manager."""
    if who == "rep":
        if facts.owner_email:
            return f"email:{facts.owner_email.lower()}"
        who = "manager"
    if who == "manager":
        return f"email:{team.manager.lower()}" if team.manager else None
    if who == "channel":
        return f"channel:{team.channel}" if team.channel else None
    if who.startswith("channel:"):
        return who
    return f"email:{who.lower()}"


def _configured(recipient: str) -> str:
    """An outbox address as a configured recipient: ``email:x`` → ``x``; a channel as is."""
    return recipient.removeprefix("email:")


class _Due(NamedTuple):
    """One notice the verdict calls for, before it is addressed."""

    kind: NoticeKind
    rule: str
    deadline: datetime
    level: int
    repeat: int
    who: str  # as configured: rep, manager, channel, channel:#x, an e-mail
    detail: str
    since: datetime  # when it fell due


def drafts_for(
    evaluation: LeadEvaluation,
    facts: LeadFacts,
    team: Team,
    escalation: EscalationPolicy,
    announced_breaches: Mapping[str, datetime | None],
    paged: Mapping[str, Collection[str]] | None = None,
    acknowledged: Collection[tuple[str, datetime]] = (),
    snoozed: Mapping[tuple[str, datetime], datetime] | None = None,
    written: Collection[str] = (),
) -> list[Draft]:
    """Notifications due for one lead now, but those whose dedup key is in ``written`` (the
    outbox has them: a pass judging a lead again drafts only what is new).

    ``announced_breaches`` maps a rule to the deadline whose breach was already announced (from
    the previous findings); a rule now met late on that deadline gets a resolved notice, to the
    rep and to everyone ``paged`` about it (rule → outbox recipients the breach reached).
    ``acknowledged``: the lead's breaches someone acknowledged, as (rule, breached deadline);
    such a breach gets no reminder any more, at any level (no repeat, no next level), while
    its warning and its "done, late" are as for any other.
    ``snoozed``: the lead's breaches whose reminders to the rep someone snoozed, as (rule,
    deadline) → until when; a level-0 warning or breach reminder of one that falls due before
    then is not drafted (the snooze enqueued the reminder that returns at its end). Levels
    above the rep and "done, late" are not affected.
    """
    due = [
        *_rule_notices(evaluation, escalation, announced_breaches, paged or {}),
        *_escalation_notices(evaluation, facts, acknowledged),
    ]
    if snoozed:
        due = [d for d in due if not _snoozed(d, snoozed)]
    said: dict[datetime, str] = {}  # deadlines in ISO 8601, each formatted once (1.2 µs)
    drafts = (_addressed(evaluation, facts, team, d, written, said) for d in due)
    unique = {draft.dedup_key: draft for draft in drafts if draft is not None}
    return list(unique.values())


def _rule_notices(
    evaluation: LeadEvaluation,
    escalation: EscalationPolicy,
    announced_breaches: Mapping[str, datetime | None],
    paged: Mapping[str, Collection[str]],
) -> Iterator[_Due]:
    """Warnings to the rep, and "done, late" for a breach that was announced: to the rep and
    to everyone it reached (the manager, a channel), so whoever was paged hears it is handled."""
    for result in evaluation.rules:
        rule = result.rule.value
        if result.state is RuleState.WARNING and result.deadline_at is not None:
            since = result.warn_at or result.deadline_at
            yield _Due(
                NoticeKind.WARNING, rule, result.deadline_at, 0, 0, "rep", result.detail, since
            )
        announced = announced_breaches.get(rule)
        if (
            escalation.send_resolved
            and result.state is RuleState.MET_LATE
            and announced is not None
            and announced == result.deadline_at
        ):
            since = result.met_at or announced
            for who in ("rep", *sorted(_configured(r) for r in paged.get(rule, ()))):
                yield _Due(NoticeKind.RESOLVED, rule, announced, 0, 0, who, result.detail, since)


def _escalation_notices(
    evaluation: LeadEvaluation, facts: LeadFacts, acknowledged: Collection[tuple[str, datetime]]
) -> Iterator[_Due]:
    """Every escalation level due, to each of its recipients, as its latest occurrence: the
    level's first notice, or once it repeats, its latest repeat — the rep keeps being reminded
    after the manager was paged (a notice already written is not written again: the dedup key
    holds the repeat number). Only the latest: a level whose first notice was never written
    (the worker was not running then, or this is its first pass) says the same once, not
    twice; its earlier occurrences are news no longer. None for a breach someone
    acknowledged: what was sent before stays sent, nothing more is written."""
    details = {r.rule.value: r.detail for r in evaluation.rules}
    if facts.status and "early_return" in details:
        details["early_return"] += f"; reason given: {facts.status}"
    for esc in evaluation.escalations:
        rule = esc.rule.value
        if (rule, esc.breached_at) in acknowledged:
            continue
        detail = details.get(rule, "")
        for step in esc.steps_due:
            kind = NoticeKind.BREACH if step.level == 0 else NoticeKind.ESCALATION
            for who in step.notify:
                yield _Due(
                    kind, rule, esc.breached_at, step.level, step.repeat, who, detail,
                    step.last_due_at,
                )  # fmt: skip


def _snoozed(due: _Due, snoozed: Mapping[tuple[str, datetime], datetime]) -> bool:
    """Whether ``due`` is a reminder to the rep that falls due inside a snooze of its breach."""
    if due.level != 0 or due.kind not in SNOOZABLE:
        return False
    until = snoozed.get((due.rule, due.deadline))
    return until is not None and due.since < until


def _addressed(
    evaluation: LeadEvaluation,
    facts: LeadFacts,
    team: Team,
    due: _Due,
    written: Collection[str],
    said: dict[datetime, str],
) -> Draft | None:
    """The notice for its recipient's address, with its dedup key; None (logged) when the
    configured recipient has no address, None (quietly) when its key is ``written``.
    ``said``: deadlines already in ISO 8601 (a lead's notices share a few)."""
    recipient = resolve_recipient(due.who, facts, team)
    if recipient is None:
        log.warning(
            "lead %s: no address for recipient %r in team %s; notification not written",
            facts.lead_id,
            due.who,
            team.name,
            extra={"lead_id": facts.lead_id},
        )
        return None
    deadline = said.get(due.deadline)
    if deadline is None:
        deadline = said[due.deadline] = due.deadline.isoformat()
    parts = (facts.lead_id, due.rule, deadline, due.kind, str(due.level))
    key = "|".join((*parts, str(due.repeat), recipient))
    if key in written:
        return None
    return Draft(
        key,
        due.kind,
        due.rule,
        due.level,
        recipient,
        due.since,
        due.deadline,
        due.detail,
        evaluation.policy,
        facts,
        team.name,
        team.calendar.timezone,
    )
