"""The review's charts: first-touch deadlines met on time per team, period by period, and
qualified leads delivered against the quota. PNG for Slack, SVG for the page; drawn off-screen
on matplotlib's object API (no pyplot, so no global figure state between threads). No I/O.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from matplotlib.figure import Figure

from worker.period_figures import PeriodFigures

#: A colour-blind-safe palette (Okabe & Ito), one colour a team.
_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


@dataclass
class Trend:
    """Per period (oldest first): each team's share of first-touch deadlines met on time and
    marketing's quota attainment, in per cent (None: nothing decided, or no quota)."""

    labels: list[str]
    teams: dict[str, list[float | None]] = field(default_factory=dict)
    attainment: list[float | None] = field(default_factory=list)

    @classmethod
    def of(cls, periods: Sequence[PeriodFigures]) -> Trend:
        names = sorted({team for figures in periods for team in figures.by["team"]})
        trend = cls([_short(figures.label) for figures in periods])
        for name in names:
            shares = []
            for figures in periods:
                segment = figures.by["team"].get(name)
                share = segment.first_touch_met_share if segment is not None else None
                shares.append(None if share is None else 100 * share)
            trend.teams[name] = shares
        for figures in periods:
            attained = figures.marketing.total.attainment if figures.marketing else None
            trend.attainment.append(None if attained is None else 100 * attained)
        return trend


def _short(label: str) -> str:
    """``week 2026-W13`` → ``W13``, ``2026-03-23..2026-03-29`` → ``23 Mar``; others as they
    are (``March 2026``, ``Q1 2026``)."""
    if label.startswith("week "):
        return label.rsplit("-", 1)[-1]
    if ".." in label:
        return f"{date.fromisoformat(label.split('..')[0]):%d %b}"
    return label


def trend_chart(trend: Trend, title: str, form: str = "png") -> bytes:
    """The two charts one above the other, as ``png`` or ``svg``."""
    figure = Figure(figsize=(8, 6), dpi=100, layout="constrained")
    figure.suptitle(title, fontsize=13)
    compliance, quota = figure.subplots(2, 1, sharex=True)
    x = list(range(len(trend.labels)))
    for index, (team, shares) in enumerate(trend.teams.items()):
        points = [(i, s) for i, s in zip(x, shares, strict=True) if s is not None]
        if points:
            compliance.plot(
                [i for i, _ in points],
                [s for _, s in points],
                marker="o",
                color=_COLOURS[index % len(_COLOURS)],
                label=team,
            )
    compliance.set_ylim(0, 105)
    compliance.set_ylabel("% on time")
    compliance.set_title("First-touch deadlines met on time, per team", fontsize=10, loc="left")
    compliance.grid(axis="y", alpha=0.3)
    if trend.teams:
        compliance.legend(loc="lower left", fontsize=8, frameon=False)
    heights = [a or 0.0 for a in trend.attainment]
    bars = quota.bar(x, heights, color="#56B4E9", width=0.6)
    for bar, value in zip(bars, trend.attainment, strict=True):
        if value is not None:
            quota.annotate(
                f"{value:.0f} %",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    quota.axhline(100, color="#D55E00", linestyle="--", linewidth=1)
    quota.set_ylim(0, max([110.0, *(h * 1.15 for h in heights)]))
    quota.set_ylabel("% of quota")
    quota.set_title("Qualified leads delivered, against the quota", fontsize=10, loc="left")
    quota.set_xticks(x, trend.labels, fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=form, metadata=_METADATA[form])
    return buffer.getvalue()


#: No creation date or software version in the file: the same figures give the same bytes.
_METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
}
