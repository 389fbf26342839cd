"""A period's report as one self-contained HTML page (``report --format html``; the dashboard
of ``sla-worker web`` serves the same page): this period against the last, per team, rep,
policy and source, the trend chart inline as SVG, and marketing's side. Every name from the
CRM is escaped. No I/O, no script, nothing fetched by the browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from html import escape
from zoneinfo import ZoneInfo

from worker.durations import format_duration
from worker.period_figures import DIMENSIONS, MarketingPeriod, Pace, PeriodFigures, Segment
from worker.periods import Period

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f6f6f6; font-weight: 600; }
.up { color: #007a3d; } .down { color: #b3261e; }
.tiles { display: flex; gap: 1em; flex-wrap: wrap; }
.tile { border: 1px solid #e4e4e4; border-radius: 6px; padding: 0.6em 1em; min-width: 11em; }
.tile b { display: block; font-size: 1.6em; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
"""


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _time(value: timedelta | None) -> str:
    return "–" if value is None else format_duration(value)


def _change(now: float | None, before: float | None, *, better_up: bool = True) -> str:
    """The change in percentage points, coloured by whether it is good news."""
    if now is None or before is None:
        return ""
    points = round(100 * (now - before))
    if points == 0:
        return ' <span class="sub">±0</span>'
    good = (points > 0) == better_up
    return f' <span class="{"up" if good else "down"}">{points:+d} pt</span>'


def _tile(title: str, value: str, change: str = "", element_id: str = "") -> str:
    ident = f' id="{element_id}"' if element_id else ""
    return f'<div class="tile"{ident}>{escape(title)}<b>{value}</b>{change}</div>'


_COLUMNS = (
    "leads", "1st touch on time", "median to 1st touch", "p90", "touches / lead",
    "missed", "escalations", "acknowledged", "snoozed", "recycled",
)  # fmt: skip


def _row(name: str, segment: Segment, before: Segment | None) -> str:
    share = segment.first_touch_met_share
    cells = [
        str(segment.received),
        _share(share) + _change(share, before.first_touch_met_share if before else None),
        _time(segment.median_to_first_touch),
        _time(segment.p90_to_first_touch),
        "–" if segment.touches_per_lead is None else f"{segment.touches_per_lead:.1f}",
        str(sum(segment.breaches.values())),
        str(segment.escalations),
        str(segment.acknowledged),
        str(segment.snoozed),
        str(segment.recycled),
    ]
    return f"<tr><td>{escape(name)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _table(dimension: str, figures: PeriodFigures, before: PeriodFigures | None) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in (dimension, *_COLUMNS))
    rows = [
        _row(name, figures.by[dimension][name], before.by[dimension].get(name) if before else None)
        for name in sorted(figures.by[dimension])
    ]
    body = "".join(rows) or f'<tr><td colspan="{len(_COLUMNS) + 1}">no leads</td></tr>'
    return f'<table data-dimension="{dimension}"><tr>{head}</tr>{body}</table>'


def _pace_row(name: str, pace: Pace) -> str:
    return (
        f"<tr><td>{escape(name)}</td><td>{pace.delivered}</td><td>{pace.quota:.1f}</td>"
        f"<td>{_share(pace.attainment)}</td></tr>"
    )


def _marketing(marketing: MarketingPeriod) -> str:
    rows = [_pace_row("all", marketing.total)]
    rows += [_pace_row(f"team {t}", p) for t, p in sorted(marketing.teams.items())]
    rows += [_pace_row(f"source {s}", p) for s, p in sorted(marketing.sources.items())]
    feedback = "".join(
        f"<li>{escape(origin)}: "
        + escape(", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items())))
        + "</li>"
        for origin, reasons in sorted(marketing.feedback.items())
    )
    return (
        f"<h2>Marketing</h2><p class=sub>Qualified leads delivered ({escape(marketing.basis)} in "
        "the period) against the period's share of the monthly quota; "
        f"complete: {_share(marketing.completeness)}</p>"
        '<table data-dimension="marketing"><tr><th></th><th>delivered</th><th>quota</th>'
        f"<th>attained</th></tr>{''.join(rows)}</table>"
        + (
            f"<p>Returned by sales, per source, by reason:</p><ul>{feedback}</ul>"
            if feedback
            else ""
        )
    )


def report_page(
    period: Period, trend: Sequence[PeriodFigures], chart_svg: str, *, title: str = ""
) -> str:
    """The page for the last of ``trend`` (the one before it is "the last period")."""
    figures = trend[-1]
    before = trend[-2] if len(trend) > 1 else None
    total, prior = figures.total, before.total if before else None
    marketing = figures.marketing
    tiles = [
        _tile("leads received", str(total.received), element_id="received"),
        _tile(
            "first touch on time",
            _share(total.first_touch_met_share),
            _change(total.first_touch_met_share, prior.first_touch_met_share if prior else None),
            element_id="first-touch",
        ),
        _tile("median to first touch", _time(total.median_to_first_touch)),
        _tile("missed deadlines", str(sum(total.breaches.values()))),
    ]
    if marketing is not None:
        earlier = before.marketing.total.attainment if before and before.marketing else None
        tiles.append(
            _tile(
                "quota attained",
                _share(marketing.total.attainment),
                _change(marketing.total.attainment, earlier),
                element_id="quota",
            )
        )
    sections = "".join(
        f"<h2>By {dimension}</h2>{_table(dimension, figures, before)}" for dimension in DIMENSIONS
    )
    heading = escape(title or f"SLA review: {period.label}")
    zone = ZoneInfo(period.zone)
    first = period.start.astimezone(zone)
    last = (period.end - timedelta(microseconds=1)).astimezone(zone)
    span = f"{first:%a %d %b %Y} to {last:%a %d %b %Y} ({period.zone})"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{heading}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{heading}</h1><p class=sub>{escape(span)}"
        + (f"; changes against {escape(before.label)}" if before else "")
        + f'</p><div class="tiles">{"".join(tiles)}</div>'
        f'<figure id="trend">{chart_svg}</figure>{sections}'
        + (_marketing(marketing) if marketing is not None else "")
        + "</body></html>\n"
    )
