"""Report: compliance with the agreement on both sides, for people to review.

Sales' side: per rep, team and policy, how many rule deadlines were met, met late or
breached, and how many are still open (from the latest findings). Marketing's side: leads
delivered this month against the quota with a month-end projection, incomplete leads and
what they lack, and sales' feedback (statuses leads were returned with) per source. The
figures are computed here from the store (plain data in ``worker.compliance``); posting queues
marketing's part, rendered by ``worker.slack.reports``, in the outbox for marketing's channel
(once per day). It changes nothing else.
"""

from __future__ import annotations

import calendar as month_calendar
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.compliance import Compliance, MarketingFigures, Pace, Report
from worker.config import Agreement
from worker.notices import NoticeKind
from worker.pipeline.context import Context
from worker.pipeline.summary import DETAIL, Summary
from worker.sla import RuleState
from worker.slack.reports import marketing_lines, render_marketing_report
from worker.store import outbox
from worker.store.db import session_scope
from worker.store.models import Finding, Lead, Owner
from worker.store.outbox import Delivery, Envelope

MAX_INCOMPLETE_LISTED = 25


@dataclass
class ReportSummary(Summary):
    queued: bool = False
    reps: int = 0
    report: Report | None = field(default=None, metadata=DETAIL)


def run(ctx: Context, now: datetime, *, post: bool = True) -> ReportSummary:
    """The stage: the compliance report; with ``post``, marketing's part is queued for its
    channel (once a day) and goes out with the next deliver pass."""
    report = build_report(ctx.sessions, ctx.agreement, now)
    queued = queue_marketing_report(ctx.sessions, ctx.agreement, report, now) if post else False
    return ReportSummary(queued=queued, reps=len(report.by_rep), report=report)


def build_report(sessions: Callable[[], Session], agreement: Agreement, now: datetime) -> Report:
    report = Report(now)
    with session_scope(sessions) as session:
        owners = {o.id: o for o in session.scalars(select(Owner)).all()}
        rows = session.execute(
            select(Finding.lead_id, Finding.state, Finding.policy, Lead.owner_id)
            .join(Lead, Lead.id == Finding.lead_id)
            .where(Finding.state != RuleState.NOT_APPLICABLE, Lead.archived.is_(False))
        ).all()
        for lead_id, state, policy, owner_id in rows:
            owner = owners.get(owner_id or "")
            rep = owner.display_name if owner else "unassigned"
            team = agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
            for bucket, key in (
                (report.by_rep, rep),
                (report.by_team, team.name),
                (report.by_policy, policy),
            ):
                bucket.setdefault(key, Compliance()).add(lead_id, state)
        if agreement.config.marketing is not None:
            report.marketing = _marketing(session, agreement, now)
    return report


#: No month-end projection (nor "below pace") before this many days of the month have passed.
PROJECT_AFTER_DAYS = 5


def _marketing(session: Session, agreement: Agreement, now: datetime) -> MarketingFigures:
    config = agreement.config.marketing
    assert config is not None
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = month_calendar.monthrange(start.year, start.month)[1]
    leads = session.scalars(
        select(Lead).where(Lead.created_at >= start, Lead.archived.is_(False))
    ).all()
    delivered = len(leads)
    elapsed = max((now - start).total_seconds() / 86400, 1.0)
    # A projection from the first days of a month is noise (one day × 30): none until
    # PROJECT_AFTER_DAYS have passed, and no "below pace" alarm before it either.
    early = elapsed < PROJECT_AFTER_DAYS

    def project(count: int) -> int | None:
        return None if early else round(count * days / elapsed)

    projected = project(delivered)
    pace = None if projected is None else projected / config.monthly_quota
    incomplete_rows = [lead for lead in leads if lead.missing_fields]
    incomplete = [
        (lead.id, lead.display_name, list(lead.missing_fields))
        for lead in incomplete_rows[:MAX_INCOMPLETE_LISTED]
    ]
    by_source = feedback_by_source(leads, agreement)
    owners = {o.id: o for o in session.scalars(select(Owner)).all()}
    per_team: Counter[str] = Counter()
    per_source: Counter[str] = Counter()
    for lead in leads:
        owner = owners.get(lead.owner_id or "")
        if owner is not None:
            per_team[agreement.team_for(owner.email, owner.teams).name] += 1
        per_source[(lead.source or "").casefold()] += 1

    def paces(quotas: dict[str, int], count: Callable[[str], int]) -> dict[str, Pace]:
        """(delivered, quota, projected, below pace) per segment with a quota."""
        figures = {}
        for name, quota in quotas.items():
            delivered_here = count(name)
            projected_here = project(delivered_here)
            below = projected_here is not None and projected_here / quota < config.pace_alert_below
            figures[name] = (delivered_here, quota, projected_here, below)
        return figures

    return MarketingFigures(
        teams=paces(config.team_quotas, lambda team: per_team[team]),
        sources=paces(config.source_quotas, lambda source: per_source[source.casefold()]),
        month=f"{start:%B %Y}",
        quota=config.monthly_quota,
        delivered=delivered,
        projected=projected,
        pace_share=pace,
        below_pace=pace is not None and pace < config.pace_alert_below,
        day=now.astimezone(UTC).day,
        days=days,
        incomplete=incomplete,
        incomplete_total=len(incomplete_rows),
        returns_by_source=by_source,
    )


class _Returnable(Protocol):
    status: str | None
    source: str | None
    properties: dict[str, Any]


def feedback_by_source(
    leads: Iterable[_Returnable], agreement: Agreement
) -> dict[str, Counter[str]]:
    """Sales' feedback: the leads returned to marketing (a return status of a policy), per
    source (and campaign, if configured), by the reason given (unset: the status)."""
    config = agreement.config.marketing
    assert config is not None
    returns = {status for policy in agreement.policies for status in policy.return_statuses}
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    for lead in leads:
        if lead.status not in returns:
            continue
        properties = lead.properties or {}
        origin = lead.source or "unknown source"
        if config.campaign_property:
            origin += f" / {properties.get(config.campaign_property) or 'no campaign'}"
        reason = lead.status or ""
        if config.reason_property:
            reason = str(properties.get(config.reason_property) or "") or f"{reason} (no reason)"
        by_source[origin][reason] += 1
    return dict(by_source)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def report_text(report: Report) -> str:
    """The report for a terminal (``sla-worker report``)."""
    lines = [f"SLA compliance report, {report.generated_at:%Y-%m-%d %H:%M} UTC", ""]
    for title, bucket in (
        ("by rep", report.by_rep),
        ("by team", report.by_team),
        ("by policy", report.by_policy),
    ):
        lines.append(f"Sales follow-up {title}:")
        lines.append(
            f"  {'':<24} {'leads':>6} {'open':>5} {'on time':>8} {'met':>5} {'late':>5} "
            f"{'breached':>9}"
        )
        for name, c in sorted(bucket.items()):
            lines.append(
                f"  {name:<24} {c.leads:>6} {c.open_leads:>5} {_share(c.on_time_share):>8} "
                f"{c.met:>5} {c.met_late:>5} {c.breached:>9}"
            )
        lines.append("")
    lines.append(
        "leads and open count leads (open: a rule still runs); on time, met, late and breached "
        "count rules (first touch, follow-up, …)."
    )
    lines.append("")
    if report.marketing is not None:
        lines += marketing_lines(report.marketing, markup=False)
    return "\n".join(lines)


def queue_marketing_report(
    sessions: Callable[[], Session], agreement: Agreement, report: Report, now: datetime
) -> bool:
    """Queue the marketing part for marketing's channel, once per UTC day; True if queued."""
    config = agreement.config.marketing
    if config is None or config.channel is None or report.marketing is None:
        return False
    recipient = f"channel:{config.channel}"
    envelope = Envelope(
        dedup_key=f"report|marketing|{now:%Y-%m-%d}|{recipient}",
        kind=NoticeKind.REPORT,
        lead_id="",
        rule=NoticeKind.REPORT,
        level=0,
        recipient=recipient,
        delivery=Delivery.REPORT,
        payload=render_marketing_report(report.marketing).to_payload(),
        due_at=now,
    )
    with session_scope(sessions) as session:
        return outbox.enqueue(session, [envelope], now) == 1


def write_compliance_csv(report: Report, path: str) -> int:
    """Compliance rows (scope, name, on-time share, counts) as CSV for a spreadsheet; returns
    the number of rows written."""
    import csv

    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "scope", "name", "leads", "open_leads", "on_time_share",
                "rules_met", "rules_met_late", "rules_breached",
            ]
        )  # fmt: skip
        for scope, bucket in (
            ("rep", report.by_rep),
            ("team", report.by_team),
            ("policy", report.by_policy),
        ):
            for name, c in sorted(bucket.items()):
                share = "" if c.on_time_share is None else f"{c.on_time_share:.4f}"
                writer.writerow(
                    [scope, name, c.leads, c.open_leads, share, c.met, c.met_late, c.breached]
                )
                rows += 1
    return rows
