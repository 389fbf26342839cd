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
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.config import Agreement
from worker.pipeline.evaluate import evaluate_bundle
from worker.sla import LeadEvaluation
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
