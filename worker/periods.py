"""Report periods: the last complete week, month or quarter, or dates FROM..TO, in one time
zone. No I/O here.

A period is a half-open interval of instants ``[start, end)``: a deadline at the very start of
a week belongs to that week, one at the start of the next week to the next. ``week``,
``month`` and ``quarter`` name the last *complete* one before ``now`` (the period a Monday
review looks back on); ``FROM..TO`` takes whole days, both ends included.
"""

from __future__ import annotations

import calendar as month_calendar
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from worker.errors import ConfigError

#: What ``--period`` accepts besides ``FROM..TO``: the last complete one, or with ``this-``
#: before it the one now running, up to now.
NAMED = ("week", "month", "quarter")


@dataclass(frozen=True)
class Period:
    """``[start, end)`` as aware instants (UTC), the zone its days are counted in, a label."""

    start: datetime
    end: datetime
    zone: str
    label: str
    #: ``week``, ``month``, ``quarter`` or ``days`` (FROM..TO): what :meth:`previous` steps by.
    kind: str = "days"

    def __contains__(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end

    def previous(self) -> Period:
        """The period of the same kind just before this one (for "since the last review")."""
        zone = ZoneInfo(self.zone)
        first = self.start.astimezone(zone).date()
        last = (self.end.astimezone(zone) - timedelta(microseconds=1)).date()
        if self.kind == "week":
            return week_of(first - timedelta(days=7), zone)
        if self.kind == "month":
            return month_of(_add_months(first.replace(day=1), -1), zone)
        if self.kind == "quarter":
            return quarter_of(_add_months(first, -3), zone)
        days = (last - first).days + 1
        return days_between(first - timedelta(days=days), first - timedelta(days=1), zone)


def trend_of(period: Period, count: int) -> list[Period]:
    """``count`` periods of the same kind ending with ``period``, oldest first."""
    periods = [period]
    while len(periods) < count:
        periods.append(periods[-1].previous())
    return periods[::-1]


def months_in(period: Period) -> float:
    """How many calendar months the period spans, day by day (a week of November is 7/30): a
    monthly quota times this is the period's quota."""
    zone = ZoneInfo(period.zone)
    day = period.start.astimezone(zone).date()
    last = (period.end.astimezone(zone) - timedelta(microseconds=1)).date()
    months = 0.0
    while day <= last:
        months += 1 / month_calendar.monthrange(day.year, day.month)[1]
        day += timedelta(days=1)
    return months


def parse_period(text: str, now: datetime, zone: ZoneInfo) -> Period:
    """``week`` | ``month`` | ``quarter`` (the last complete one) | ``this-week`` |
    ``this-month`` | ``this-quarter`` (so far) | ``FROM..TO`` (ISO dates) → the period, or a
    :class:`ConfigError` that says what is accepted."""
    wanted = text.strip().lower()
    today = now.astimezone(zone).date()
    if wanted.startswith("this-") and wanted[5:] in NAMED:
        current = {"week": week_of, "month": month_of, "quarter": quarter_of}[wanted[5:]]
        whole = current(today, zone)
        return replace(whole, end=min(whole.end, now), label=f"{whole.label} so far")
    if wanted == "week":
        return week_of(today - timedelta(days=7), zone)
    if wanted == "month":
        return month_of(_add_months(today.replace(day=1), -1), zone)
    if wanted == "quarter":
        return quarter_of(_add_months(_quarter_start(today), -3), zone)
    first_text, sep, last_text = wanted.partition("..")
    if not sep:
        raise ConfigError(
            f'--period: "{text}" is not week, month, quarter (or this-week, …) or FROM..TO '
            "(e.g. 2026-11-02..2026-11-08)"
        )
    try:
        first, last = date.fromisoformat(first_text.strip()), date.fromisoformat(last_text.strip())
    except ValueError:
        raise ConfigError(
            f'--period: "{text}" needs two ISO dates, FROM..TO, like 2026-11-02..2026-11-08'
        ) from None
    if last < first:
        raise ConfigError(f"--period: {last} is before {first}")
    return days_between(first, last, zone)


def week_of(day: date, zone: ZoneInfo) -> Period:
    """The ISO week (Monday to Sunday) holding ``day``."""
    monday = day - timedelta(days=day.weekday())
    year, week, _ = monday.isocalendar()
    return _period(monday, monday + timedelta(days=7), zone, f"week {year}-W{week:02d}", "week")


def month_of(day: date, zone: ZoneInfo) -> Period:
    first = day.replace(day=1)
    return _period(first, _add_months(first, 1), zone, f"{first:%B %Y}", "month")


def quarter_of(day: date, zone: ZoneInfo) -> Period:
    first = _quarter_start(day)
    label = f"Q{(first.month - 1) // 3 + 1} {first.year}"
    return _period(first, _add_months(first, 3), zone, label, "quarter")


def days_between(first: date, last: date, zone: ZoneInfo) -> Period:
    """``first`` to ``last``, both whole days included."""
    return _period(first, last + timedelta(days=1), zone, f"{first}..{last}")


def _period(first: date, after: date, zone: ZoneInfo, label: str, kind: str = "days") -> Period:
    """Midnight to midnight in ``zone`` (a DST day is 23 or 25 hours long)."""
    start = datetime.combine(first, time(0), zone).astimezone(UTC)
    end = datetime.combine(after, time(0), zone).astimezone(UTC)
    return Period(start, end, zone.key, label, kind)


def _quarter_start(day: date) -> date:
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def _add_months(first: date, months: int) -> date:
    """The first of the month ``months`` after ``first``'s month."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
