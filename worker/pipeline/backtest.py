"""Backtest: judge every stored lead under the current config and a candidate one, and show
what would change, before an admin deploys a policy, calendar or escalation change.

Deadlines are recomputed from each lead's history (assignment, touches, status changes), so a
changed policy applies to leads already in flight exactly as it would after deployment.
Read-only: it writes nothing to the store, the outbox or the CRM.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.config import Agreement, Team
from worker.pipeline.evaluate import evaluate_bundle
from worker.sla import EscalationStep, LeadEvaluation, RuleState
from worker.store import queries
from worker.store.db import session_scope
from worker.store.models import Lead

MAX_CHANGES_LISTED = 50


@dataclass
class Tally:
    states: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, state) → leads
    breached_leads: int = 0
    recycle_due: int = 0

    def add(self, evaluation: LeadEvaluation) -> None:
        for result in evaluation.rules:
            self.states[(result.rule.value, result.state.value)] += 1
        if evaluation.escalations:
            self.breached_leads += 1
        if evaluation.recycle_due:
            self.recycle_due += 1


@dataclass
class Change:
    lead_id: str
    name: str
    rule: str
    before: str
    after: str


@dataclass
class BacktestResult:
    at: datetime
    leads: int = 0
    current: Tally = field(default_factory=Tally)
    candidate: Tally = field(default_factory=Tally)
    changes: list[Change] = field(default_factory=list)
    changed_leads: int = 0


def backtest(
    sessions: Callable[[], Session],
    current: Agreement,
    candidate: Agreement,
    at: datetime,
    *,
    batch_size: int = 1000,
) -> BacktestResult:
    result = BacktestResult(at)
    with session_scope(sessions) as session:
        ids = list(
            session.scalars(select(Lead.id).where(Lead.archived.is_(False)).order_by(Lead.id))
        )
        for start in range(0, len(ids), batch_size):
            for bundle in queries.load_bundles(session, ids[start : start + batch_size]):
                _compare(bundle, current, candidate, at, result)
    return result


def _compare(
    bundle: queries.LeadBundle,
    current: Agreement,
    candidate: Agreement,
    at: datetime,
    result: BacktestResult,
) -> None:
    before = evaluate_bundle(bundle, current, at)
    after = evaluate_bundle(bundle, candidate, at)
    if before is None and after is None:
        return
    result.leads += 1
    states_before = {}
    if before is not None:
        result.current.add(before[0])
        states_before = {r.rule.value: r.state.value for r in before[0].rules}
    states_after = {}
    if after is not None:
        result.candidate.add(after[0])
        states_after = {r.rule.value: r.state.value for r in after[0].rules}
    changed = False
    for rule in sorted(set(states_before) | set(states_after)):
        old = states_before.get(rule, "not_applicable")
        new = states_after.get(rule, "not_applicable")
        if old != new:
            changed = True
            if len(result.changes) < MAX_CHANGES_LISTED:
                result.changes.append(Change(bundle.lead.id, bundle.lead_name, rule, old, new))
    result.changed_leads += changed


def backtest_text(result: BacktestResult) -> str:
    lines = [
        f"Backtest at {result.at:%Y-%m-%d %H:%M} UTC over {result.leads} judged leads",
        "",
        f"  {'rule / state':<34} {'current':>8} {'candidate':>10}",
    ]
    keys = sorted(set(result.current.states) | set(result.candidate.states))
    for rule, state in keys:
        if state == "not_applicable":
            continue
        lines.append(
            f"  {rule + ' ' + state:<34} {result.current.states[(rule, state)]:>8} "
            f"{result.candidate.states[(rule, state)]:>10}"
        )
    lines += [
        f"  {'leads with a breach escalating':<34} {result.current.breached_leads:>8} "
        f"{result.candidate.breached_leads:>10}",
        f"  {'leads due for recycling':<34} {result.current.recycle_due:>8} "
        f"{result.candidate.recycle_due:>10}",
        "",
        f"{result.changed_leads} leads would change verdict:",
    ]
    for change in result.changes:
        lines.append(
            f"  lead {change.lead_id} {change.name}: {change.rule} {change.before} → {change.after}"
        )
    if result.changed_leads > len(result.changes):
        lines.append(f"  …and more ({result.changed_leads} leads in all)")
    return "\n".join(lines)


# --- replay over a period (``backtest --since 30d``) --------------------------------------------


@dataclass
class Outcome:
    """What one config makes of the stored leads over ``[start, end)``."""

    warnings: int = 0
    breaches: int = 0
    escalations: int = 0
    recycles: int = 0
    #: (recipient, day) → messages: every warning, breach and escalation notice (each repeat
    #: too) before grouping into lists and digests.
    messages: Counter[tuple[str, date]] = field(default_factory=Counter)

    @property
    def busiest(self) -> tuple[str, date, int] | None:
        if not self.messages:
            return None
        (who, day), count = max(self.messages.items(), key=lambda item: (item[1], item[0]))
        return who, day, count

    @property
    def per_person_day(self) -> float | None:
        return sum(self.messages.values()) / len(self.messages) if self.messages else None


@dataclass
class Verdicts:
    """One lead's outcome under one config, to compare: per rule, its final state and whether
    it breached in the period; and whether it is due for recycling at the end."""

    rules: dict[str, tuple[str, bool]]
    recycle: bool


@dataclass
class ReplayChange:
    lead_id: str
    name: str
    what: list[str]


@dataclass
class ReplayResult:
    start: datetime
    end: datetime
    leads: int = 0
    current: Outcome = field(default_factory=Outcome)
    candidate: Outcome = field(default_factory=Outcome)
    changes: list[ReplayChange] = field(default_factory=list)
    changed_leads: int = 0


def replay(
    sessions: Callable[[], Session],
    current: Agreement,
    candidate: Agreement,
    start: datetime,
    end: datetime,
    *,
    batch_size: int = 1000,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ReplayResult:
    """Both configs over ``[start, end)``: each lead judged at ``end`` (its history gives every
    deadline, warning and escalation up to then) and, for a breach fixed late within the
    period, just before the fix (the ladder it climbed until then). Read-only."""
    result = ReplayResult(start, end)
    with session_scope(sessions) as session:
        ids = list(
            session.scalars(
                select(Lead.id)
                .where(Lead.archived.is_(False), Lead.created_at < end)
                .order_by(Lead.id)
            )
        )
        for first in range(0, len(ids), batch_size):
            for bundle in queries.load_bundles(session, ids[first : first + batch_size]):
                before = _replay_one(bundle, current, start, end, result.current)
                after = _replay_one(bundle, candidate, start, end, result.candidate)
                if before is None and after is None:
                    continue
                result.leads += 1
                what = _differences(before, after)
                if what:
                    result.changed_leads += 1
                    if len(result.changes) < MAX_CHANGES_LISTED:
                        result.changes.append(ReplayChange(bundle.lead.id, bundle.lead_name, what))
            progress(min(first + batch_size, len(ids)), len(ids))
    return result


def _replay_one(
    bundle: queries.LeadBundle, agreement: Agreement, start: datetime, end: datetime, into: Outcome
) -> Verdicts | None:
    judged = evaluate_bundle(bundle, agreement, end)
    if judged is None:
        return None
    evaluation, team = judged
    rep = bundle.owner_name
    zone = team.calendar.timezone

    def message(to: str, at: datetime) -> None:
        into.messages[(to, at.astimezone(ZoneInfo(zone)).date())] += 1

    rules: dict[str, tuple[str, bool]] = {}
    ladders = list(evaluation.escalations)
    for result in evaluation.rules:
        warned = (
            result.warn_at is not None
            and start <= result.warn_at < end
            and (result.met_at is None or result.met_at > result.warn_at)
        )
        if warned:
            into.warnings += 1
            assert result.warn_at is not None
            message(rep, result.warn_at)
        missed = result.state in (RuleState.BREACHED, RuleState.MET_LATE)
        breached = missed and result.deadline_at is not None and start <= result.deadline_at < end
        into.breaches += breached
        rules[result.rule.value] = (result.state.value, breached)
        fixed = result.met_at
        if result.state == RuleState.MET_LATE and fixed is not None and start < fixed <= end:
            # The ladder this breach climbed until it was fixed.
            earlier = evaluate_bundle(bundle, agreement, fixed - timedelta(microseconds=1))
            if earlier is not None:
                ladders += [e for e in earlier[0].escalations if e.rule == result.rule]
    for escalation in ladders:
        for step in escalation.steps_due:
            for at in _notices_of(step):
                if not start <= at < end:
                    continue
                into.escalations += step.level > 0
                for target in step.notify:
                    message(_recipient(target, rep, team), at)
    into.recycles += evaluation.recycle_due
    return Verdicts(rules, evaluation.recycle_due)


def _notices_of(step: EscalationStep) -> list[datetime]:
    """When a level's notices fell due: its time, then its repeats, spread evenly up to the
    latest (the engine gives their count and the latest; repeats run in business time, so a
    repeat's own instant is approximate — only which day and period it falls in is used)."""
    if step.repeat == 0 or step.latest_at is None:
        return [step.due_at]
    gap = (step.latest_at - step.due_at) / step.repeat
    return [step.due_at + gap * i for i in range(step.repeat + 1)]


def _recipient(target: str, rep: str, team: Team) -> str:
    if target == "rep":
        return rep
    if target == "manager":
        return team.manager or "the team's manager (none set)"
    if target == "channel":
        return team.channel or "the team's channel (none set)"
    return target


def _differences(before: Verdicts | None, after: Verdicts | None) -> list[str]:
    rules_before = before.rules if before else {}
    rules_after = after.rules if after else {}
    said = []
    for rule in sorted(set(rules_before) | set(rules_after)):
        old_state, old_breach = rules_before.get(rule, ("not_applicable", False))
        new_state, new_breach = rules_after.get(rule, ("not_applicable", False))
        if old_breach != new_breach:
            said.append(
                f"{rule} {'no longer breached' if old_breach else 'breached'} in the period"
            )
        elif old_state != new_state:
            said.append(f"{rule} {old_state} → {new_state}")
    if bool(before and before.recycle) != bool(after and after.recycle):
        said.append("recycled" if after and after.recycle else "no longer recycled")
    return said


def replay_text(result: ReplayResult) -> str:
    days = (result.end - result.start) / timedelta(days=1)
    lines = [
        f"Backtest from {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC "
        f"({days:g} days) over {result.leads} judged leads",
        "",
        f"  {'':<34} {'current':>10} {'candidate':>10}",
    ]
    current, candidate = result.current, result.candidate
    for title, a, b in (
        ("warnings", current.warnings, candidate.warnings),
        ("breaches", current.breaches, candidate.breaches),
        ("escalations (above the rep)", current.escalations, candidate.escalations),
        ("leads due for recycling at the end", current.recycles, candidate.recycles),
        ("messages", sum(current.messages.values()), sum(candidate.messages.values())),
        ("messages per person and day", _mean(current), _mean(candidate)),
    ):
        lines.append(f"  {title:<34} {a:>10} {b:>10}")
    for name, outcome in (("current", current), ("candidate", candidate)):
        busiest = outcome.busiest
        if busiest is not None:
            who, day, count = busiest
            lines.append(f"  busiest ({name}): {who} on {day:%a %d %b}, {count} messages")
    plural = "" if result.changed_leads == 1 else "s"
    lines += ["", f"{result.changed_leads} lead{plural} would change outcome:"]
    for change in result.changes:
        lines.append(f"  lead {change.lead_id} {change.name}: {'; '.join(change.what)}")
    if result.changed_leads > len(result.changes):
        lines.append(f"  …and more ({result.changed_leads} leads in all)")
    return "\n".join(lines)


def _mean(outcome: Outcome) -> str:
    value = outcome.per_person_day
    return "–" if value is None else f"{value:.1f}"
