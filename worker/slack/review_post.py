"""The review meeting's post: the period's headline figures, against the one before, and the
biggest changes in words, as Slack mrkdwn (the chart and the CSV go with it as files). Pure:
no I/O; every name from the CRM or the config is escaped."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from worker.durations import format_duration
from worker.period_figures import PeriodFigures
from worker.periods import Period
from worker.review_cadence import biggest_changes
from worker.slack.messages import MAX_SECTION_CHARS, escape


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _points(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return ""
    return f" ({round(100 * (now - before)):+d} pt)"


def review_text(period: Period, figures: PeriodFigures, before: PeriodFigures | None) -> str:
    """The post's text (fits one Slack section)."""
    zone = ZoneInfo(period.zone)
    first = period.start.astimezone(zone)
    last = (period.end - timedelta(microseconds=1)).astimezone(zone)
    total = figures.total
    share = total.first_touch_met_share
    earlier = before.total.first_touch_met_share if before is not None else None
    median = total.median_to_first_touch
    lines = [
        f"*SLA review: {escape(period.label)}* ({first:%a %d %b} to {last:%a %d %b %Y}, "
        f"{escape(period.zone)})",
        f"First touch on time: *{_share(share)}*{_points(share, earlier)} of "
        f"{total.decided} deadlines · median {format_duration(median) if median else '–'} · "
        f"{sum(total.breaches.values())} deadlines missed · {total.escalations} escalations · "
        f"{total.received} lead{'' if total.received == 1 else 's'} received",
    ]
    marketing = figures.marketing
    if marketing is not None:
        attained = marketing.total.attainment
        prior = before.marketing.total.attainment if before and before.marketing else None
        lines.append(
            f"Qualified leads: *{marketing.total.delivered}* of {marketing.total.quota:.0f} for "
            f"the period, {_share(attained)} of quota{_points(attained, prior)} · complete "
            f"{_share(marketing.completeness)}"
        )
    teams = sorted(figures.by["team"].items())
    if len(teams) > 1:
        lines.append(
            "By team: "
            + " · ".join(
                f"{escape(name)} {_share(segment.first_touch_met_share)}" for name, segment in teams
            )
        )
    changes = biggest_changes(figures, before) if before is not None else []
    if changes:
        lines += ["", "*Biggest changes since the last review*"]
        lines += [f"• {escape(change)}" for change in changes]
    elif before is not None:
        lines += ["", "No change of 5 points or more since the last review."]
    lines += [
        "",
        "The chart and the figures per rep, team, policy and source (CSV) are attached.",
    ]
    return "\n".join(lines)[:MAX_SECTION_CHARS]
