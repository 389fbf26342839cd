"""Compliance over a period (``sla-worker report --period``), per rep, team, policy and lead
source, computed from the stored history, not from counters that can drift.

Every stored lead created before the period's end is judged by the engine as of ``now``, as
evaluate judges it (its team's calendar, its policy, its touches and status history), so a
deadline in the period shows how it finally went: met, met late, breached, or still open.
Escalations are the escalation notices sent in the period (one per lead, rule and level);
acknowledgements, snoozes and recycles are those recorded in the period. Read-only.

Known gap: a lead recycled back to marketing has no owner any more, so the engine does not
judge it; its recycle counts, but its first-touch result does not.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.charts import Trend, trend_chart
from worker.config import Agreement, Team
from worker.crm.hubspot import parse_hubspot_datetime
from worker.durations import format_duration
from worker.names import display_name
from worker.notices import NoticeKind
from worker.period_figures import DIMENSIONS, MarketingPeriod, Pace, PeriodFigures, Segment
from worker.periods import Period, months_in, trend_of
from worker.pipeline.evaluate import engine_inputs, evaluate_bundle
from worker.pipeline.report import feedback_by_source
from worker.report_page import report_page
from worker.sla import LeadEvaluation, Rule, RuleState, select_policy
from worker.store import queries
from worker.store.db import session_scope
from worker.store.models import Acknowledgement, Lead, OutboxRow, Owner, RecycleAudit, Snooze

log = logging.getLogger(__name__)

#: Leads judged per read.
BATCH = 1000


@dataclass
class _Events:
    """What happened to leads in the period, by lead id."""

    escalations: dict[str, int]
    acknowledged: dict[str, int]
    snoozed: dict[str, int]
    #: Recycled lead → how often, and the owner it was taken from.
    recycled: dict[str, tuple[int, str | None]]


def build_period_figures(
    sessions: Callable[[], Session],
    agreement: Agreement,
    period: Period,
    now: datetime,
    *,
    team: str | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> PeriodFigures:
    """The period's figures; ``team``: that team's leads only; ``progress`` is told how many
    leads of how many were read after each batch."""
    return build_figures(sessions, agreement, [period], now, team=team, progress=progress)[0]


def build_figures(
    sessions: Callable[[], Session],
    agreement: Agreement,
    periods: Sequence[Period],
    now: datetime,
    *,
    team: str | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> list[PeriodFigures]:
    """The figures of several periods (a trend) in one reading: each lead is judged once."""
    figures = [PeriodFigures(period.label) for period in periods]
    with session_scope(sessions) as session:
        windows = [
            _Window(period, into, _events(session, period))
            for period, into in zip(periods, figures, strict=True)
        ]
        owners = {o.id: o for o in session.scalars(select(Owner))}
        end = max(period.end for period in periods)
        ids = list(session.scalars(select(Lead.id).where(Lead.created_at < end).order_by(Lead.id)))
        for start in range(0, len(ids), BATCH):
            for bundle in queries.load_bundles(session, ids[start : start + BATCH]):
                _add_lead(windows, bundle, agreement, now, owners, team)
            progress(min(start + BATCH, len(ids)), len(ids))
        for window in windows:
            window.figures.marketing = _marketing_period(
                session, agreement, window.period, owners, team
            )
    return figures


@dataclass
class _Window:
    """One period being added up: its figures and what happened in it."""

    period: Period
    figures: PeriodFigures
    events: _Events


def _marketing_period(
    session: Session,
    agreement: Agreement,
    period: Period,
    owners: dict[str, Owner],
    only_team: str | None,
) -> MarketingPeriod | None:
    """Qualified leads delivered in the period against the period's share of the quota, how
    many are complete, and sales' feedback on them."""
    config = agreement.config.marketing
    if config is None:
        return None
    months = months_in(period)
    date_property = config.qualified_date
    figures = MarketingPeriod(
        basis=f"entered {config.qualified_stage or date_property}" if date_property else "created",
        total=Pace(quota=config.monthly_quota * months),
        teams={t: Pace(quota=q * months) for t, q in config.team_quotas.items()},
        sources={s: Pace(quota=q * months) for s, q in config.source_quotas.items()},
    )
    sources = {s.casefold(): pace for s, pace in figures.sources.items()}
    query = select(Lead).where(Lead.created_at < period.end, Lead.archived.is_(False))
    if date_property is None:
        query = query.where(Lead.created_at >= period.start)
    delivered = []
    for lead in session.scalars(query.execution_options(yield_per=BATCH)):
        if date_property is not None and _qualified_at(lead, date_property) not in period:
            continue
        owner = owners.get(lead.owner_id or "")
        team = agreement.team_for(owner.email, owner.teams).name if owner is not None else None
        if only_team is not None and team != only_team:
            continue
        delivered.append(lead)
        figures.total.delivered += 1
        figures.complete += not lead.missing_fields
        if team in figures.teams:
            figures.teams[team].delivered += 1
        if (lead.source or "").casefold() in sources:
            sources[(lead.source or "").casefold()].delivered += 1
    figures.feedback = feedback_by_source(delivered, agreement)
    return figures


def _qualified_at(lead: Lead, date_property: str) -> datetime | None:
    raw = (lead.properties or {}).get(date_property)
    if not raw:
        return None
    try:
        return parse_hubspot_datetime(str(raw))
    except ValueError:
        log.warning("lead %s: %s is not a date (%.40r); not counted", lead.id, date_property, raw)
        return None


def _events(session: Session, period: Period) -> _Events:
    def per_lead(rows: Iterator[Any] | Any) -> dict[str, int]:
        return {lead_id: count for lead_id, count in rows}

    escalated = (
        select(OutboxRow.lead_id, OutboxRow.rule, OutboxRow.level)
        .where(
            OutboxRow.kind == NoticeKind.ESCALATION,
            OutboxRow.status == "sent",
            OutboxRow.sent_at >= period.start,
            OutboxRow.sent_at < period.end,
        )
        .distinct()
        .subquery()
    )
    recycled: dict[str, tuple[int, str | None]] = {}
    for lead_id, owner_id in session.execute(
        select(RecycleAudit.lead_id, RecycleAudit.owner_id)
        .where(
            RecycleAudit.outcome == "recycled",
            RecycleAudit.at >= period.start,
            RecycleAudit.at < period.end,
        )
        .order_by(RecycleAudit.at)
    ):
        recycled[lead_id] = (recycled.get(lead_id, (0, None))[0] + 1, owner_id)
    return _Events(
        escalations=per_lead(
            session.execute(select(escalated.c.lead_id, func.count()).group_by(escalated.c.lead_id))
        ),
        acknowledged=per_lead(
            session.execute(
                select(Acknowledgement.lead_id, func.count())
                .where(Acknowledgement.at >= period.start, Acknowledgement.at < period.end)
                .group_by(Acknowledgement.lead_id)
            )
        ),
        snoozed=per_lead(
            session.execute(
                select(Snooze.lead_id, func.count())
                .where(Snooze.at >= period.start, Snooze.at < period.end)
                .group_by(Snooze.lead_id)
            )
        ),
        recycled=recycled,
    )


def _add_lead(
    windows: Sequence[_Window],
    bundle: queries.LeadBundle,
    agreement: Agreement,
    now: datetime,
    owners: dict[str, Owner],
    only_team: str | None,
) -> None:
    row = bundle.lead
    owner: Any = bundle.owner
    recycled_from = next(
        (w.events.recycled[row.id][1] for w in windows if row.id in w.events.recycled), None
    )
    if owner is None and recycled_from is not None:
        owner = owners.get(recycled_from)
    team = agreement.team_for(
        owner.email if owner is not None else None, owner.teams if owner is not None else []
    )
    if only_team is not None and team.name != only_team:
        return
    judged = evaluate_bundle(bundle, agreement, now)
    evaluation = judged[0] if judged is not None else None
    keys = {
        "rep": display_name(owner.first_name, owner.last_name, owner.email, owner.id)
        if owner is not None
        else "unassigned",
        "team": team.name,
        "policy": evaluation.policy
        if evaluation is not None
        else select_policy(engine_inputs(bundle)[0], agreement.policies).name,
        "source": row.source or "(no source)",
    }
    for window in windows:
        lead = _lead_segment(bundle, evaluation, team, window.period)
        events = window.events
        lead.escalations = events.escalations.get(row.id, 0)
        lead.acknowledged = events.acknowledged.get(row.id, 0)
        lead.snoozed = events.snoozed.get(row.id, 0)
        lead.recycled = events.recycled.get(row.id, (0, None))[0]
        if not lead.is_empty():
            for segment in window.figures.segments(keys):
                segment.absorb(lead)


def _lead_segment(
    bundle: queries.LeadBundle, evaluation: LeadEvaluation | None, team: Team, period: Period
) -> Segment:
    """One lead's part of the period's figures, from its judgement as of now."""
    lead = Segment()
    for result in evaluation.rules if evaluation is not None else ():
        if result.rule == Rule.FIRST_TOUCH and result.started_at in period:
            lead.received = 1
        if result.deadline_at not in period:
            continue
        lead.add_deadline(result.rule.value, result.state.value)
        if result.rule == Rule.FIRST_TOUCH:
            met = result.state in (RuleState.MET, RuleState.MET_LATE)
            took = (
                team.calendar.between(result.started_at, result.met_at)
                if met and result.met_at is not None and result.started_at is not None
                else None
            )
            lead.add_first_touch(result.state.value, took)
    if lead.received:
        for touch in bundle.touches:
            if touch.occurred_at in period:
                lead.touches += 1
                lead.time_spent += timedelta(milliseconds=touch.duration_ms)
    return lead


# --- rendering: one row of fields per segment, shared by CSV, JSON and the table ---------------

_RULES = [rule.value for rule in Rule]


def _minutes(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds() / 60, 1)


def segment_fields(segment: Segment) -> dict[str, Any]:
    """A segment's figures by column name (times in minutes, shares in per cent)."""
    share = segment.first_touch_met_share
    per_lead = segment.touches_per_lead
    return {
        "received": segment.received,
        "first_touch_met": segment.met,
        "first_touch_met_late": segment.met_late,
        "first_touch_breached": segment.breached,
        "first_touch_open": segment.open,
        "first_touch_met_pct": None if share is None else round(100 * share, 1),
        "median_to_first_touch_min": _minutes(segment.median_to_first_touch),
        "p90_to_first_touch_min": _minutes(segment.p90_to_first_touch),
        "touches": segment.touches,
        "touches_per_lead": None if per_lead is None else round(per_lead, 2),
        "time_spent_min": _minutes(segment.time_spent),
        **{f"missed_{rule}": segment.breaches[rule] for rule in _RULES},
        "escalations": segment.escalations,
        "acknowledged": segment.acknowledged,
        "snoozed": segment.snoozed,
        "early_returns": segment.early_returns,
        "recycled": segment.recycled,
    }


def _rows(figures: PeriodFigures) -> Iterator[tuple[str, str, Segment]]:
    yield "all", "all", figures.total
    for dimension in DIMENSIONS:
        for name in sorted(figures.by[dimension]):
            yield dimension, name, figures.by[dimension][name]


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def pace_fields(pace: Pace) -> dict[str, Any]:
    return {
        "delivered": pace.delivered,
        "quota": round(pace.quota, 1),
        "attainment_pct": _pct(pace.attainment),
    }


def _marketing_rows(marketing: MarketingPeriod) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Marketing's side as (dimension, segment, fields), for the CSV and JSON."""
    yield (
        "marketing",
        marketing.basis,
        {**pace_fields(marketing.total), "completeness_pct": _pct(marketing.completeness)},
    )
    for dimension, paces in (
        ("marketing_team", marketing.teams),
        ("marketing_source", marketing.sources),
    ):
        for name in sorted(paces):
            yield dimension, name, pace_fields(paces[name])
    for origin in sorted(marketing.feedback):
        for reason, count in sorted(marketing.feedback[origin].items()):
            yield "feedback", f"{origin}: {reason}", {"returned": count}


def period_csv(figures: PeriodFigures, period: Period) -> str:
    """One row per segment (sales' side), then marketing's rows; one header for all."""
    rows = [(d, n, segment_fields(segment)) for d, n, segment in _rows(figures)]
    if figures.marketing is not None:
        rows += list(_marketing_rows(figures.marketing))
    columns = ["period_start", "period_end", "dimension", "segment"]
    for _, _, fields in rows:
        columns += [name for name in fields if name not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    for dimension, name, fields in rows:
        writer.writerow(
            {
                "period_start": period.start.isoformat(),
                "period_end": period.end.isoformat(),
                "dimension": dimension,
                "segment": name,
                **{k: "" if v is None else v for k, v in fields.items()},
            }
        )
    return out.getvalue()


def period_json(figures: PeriodFigures, period: Period) -> str:
    by: dict[str, dict[str, Any]] = defaultdict(dict)
    for dimension, name, segment in _rows(figures):
        if dimension != "all":
            by[dimension][name] = segment_fields(segment)
    marketing = figures.marketing
    document = {
        "period": {
            "label": period.label,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "time_zone": period.zone,
        },
        "total": segment_fields(figures.total),
        "by": {dimension: by.get(dimension, {}) for dimension in DIMENSIONS},
        "marketing": None
        if marketing is None
        else {
            "basis": marketing.basis,
            **pace_fields(marketing.total),
            "completeness_pct": _pct(marketing.completeness),
            "teams": {t: pace_fields(p) for t, p in sorted(marketing.teams.items())},
            "sources": {s: pace_fields(p) for s, p in sorted(marketing.sources.items())},
            "feedback": {o: dict(sorted(c.items())) for o, c in sorted(marketing.feedback.items())},
        },
    }
    return json.dumps(document, indent=2) + "\n"


def _duration(value: timedelta | None) -> str:
    return "–" if value is None else format_duration(value)


def period_text(figures: PeriodFigures, period: Period) -> str:
    """The table a terminal shows: one block per dimension, one line per segment."""
    zone = ZoneInfo(period.zone)
    zone_start = period.start.astimezone(zone)
    zone_last = (period.end - timedelta(microseconds=1)).astimezone(zone)
    lines = [
        f"Compliance, {period.label} ({zone_start:%a %d %b %Y} to {zone_last:%a %d %b %Y}, "
        f"{period.zone})",
    ]
    header = (
        f"  {'':<28} {'leads':>6} {'1st touch':>9} {'median':>8} {'p90':>8} "
        f"{'touches':>7} {'time':>7} {'missed':>6} {'escal.':>6} {'ack':>4} {'snooze':>6} "
        f"{'early ret.':>10} {'recycled':>8}"
    )
    shown = None
    for dimension, name, segment in _rows(figures):
        if dimension != shown:
            lines += ["", header if dimension == "all" else f"  by {dimension}"]
            shown = dimension
        share = segment.first_touch_met_share
        lines.append(
            f"  {_label(dimension, name):<28.28} {segment.received:>6} "
            f"{'–' if share is None else f'{100 * share:.0f} %':>9} "
            f"{_duration(segment.median_to_first_touch):>8} "
            f"{_duration(segment.p90_to_first_touch):>8} "
            f"{'–' if segment.touches_per_lead is None else f'{segment.touches_per_lead:.1f}':>7} "
            f"{_duration(segment.time_spent) if segment.time_spent else '–':>7} "
            f"{sum(segment.breaches.values()):>6} {segment.escalations:>6} "
            f"{segment.acknowledged:>4} {segment.snoozed:>6} {segment.early_returns:>10} "
            f"{segment.recycled:>8}"
        )
    if figures.marketing is not None:
        lines += ["", *_marketing_text(figures.marketing)]
    lines += [
        "",
        "leads: first-touch clocks started in the period; 1st touch: deadlines in the period met "
        "on time, of those decided; median/p90: business time to the first touch; touches: per "
        "lead received; missed: deadlines in the period breached or met late (every rule).",
    ]
    return "\n".join(lines)


def _label(dimension: str, name: str) -> str:
    return "all leads" if dimension == "all" else name


def _pace_text(name: str, pace: Pace) -> str:
    share = pace.attainment
    return (
        f"  {name:<28.28} {pace.delivered:>6} of {pace.quota:>7.1f} "
        f"{'–' if share is None else f'{100 * share:.0f} %':>7}"
    )


def _marketing_text(marketing: MarketingPeriod) -> list[str]:
    completeness = marketing.completeness
    lines = [
        f"Marketing: qualified leads delivered ({marketing.basis} in the period) against the "
        "period's share of the monthly quota",
        _pace_text("all", marketing.total),
    ]
    lines += [_pace_text(f"team {t}", p) for t, p in sorted(marketing.teams.items())]
    lines += [_pace_text(f"source {s}", p) for s, p in sorted(marketing.sources.items())]
    lines.append(
        "  complete (every required field): "
        + ("–" if completeness is None else f"{100 * completeness:.0f} %")
    )
    if marketing.feedback:
        lines.append("  returned by sales, per source, by reason:")
        for origin, reasons in sorted(marketing.feedback.items()):
            said = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
            lines.append(f"    {origin}: {said}")
    return lines


#: Periods a chart and the page show: the chosen one and those before it.
TREND_PERIODS = 8

FORMATS = ("table", "csv", "json", "html", "png")


def render(
    sessions: Callable[[], Session],
    agreement: Agreement,
    period: Period,
    now: datetime,
    form: str,
    *,
    team: str | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> str | bytes:
    """The period's report in ``form`` (one of :data:`FORMATS`); ``png`` and ``html`` also
    read the periods before it for the trend (one reading for all)."""
    if form in ("table", "csv", "json"):
        figures = build_period_figures(
            sessions, agreement, period, now, team=team, progress=progress
        )
        return {"table": period_text, "csv": period_csv, "json": period_json}[form](figures, period)
    trend = build_figures(
        sessions, agreement, trend_of(period, TREND_PERIODS), now, team=team, progress=progress
    )
    title = f"SLA review: {period.label}" + (f", team {team}" if team else "")
    if form == "png":
        return trend_chart(Trend.of(trend), title, "png")
    svg = trend_chart(Trend.of(trend), title, "svg").decode("utf-8")
    return report_page(period, trend, svg[svg.index("<svg") :], title=title)
