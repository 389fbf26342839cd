"""Who is away, in pure terms: away periods from three sources (``/sla away``, a Slack status
that matches ``away.markers``, the config's ``away.reps``), which one is in force at an
instant, and what ``/sla away <until>`` means. No I/O, no clock: ``now`` is an argument.

A date (``2026-12-24``), ``tomorrow`` and a weekday (``thu``) mean the start of that day in the
rep's team calendar's time zone, the day they are back; a duration (``3d``, ``4h``) is wall
time from now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from worker.config import AwayConfig
from worker.durations import parse_wall_duration

#: ``source`` of a period: typed in Slack, read from the Slack status, written in the config.
COMMAND = "command"
SLACK_STATUS = "slack_status"
CONFIG = "config"

#: The furthest ``/sla away`` reaches: a typo must not silence a rep for years.
MAX_AWAY_FOR = timedelta(days=366)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNTIL_HINT = "a date (2026-12-24), a duration (3d, 4h), tomorrow, or a weekday (thu)"


@dataclass(frozen=True)
class AwayPeriod:
    """A rep away from ``from_at`` until ``until`` (None: no end given). ``key`` tells periods
    apart (a manager is warned once per lead per period); ``said_by`` is who or what said so."""

    email: str
    source: str
    from_at: datetime
    until: datetime | None
    key: str
    said_by: str

    def covers(self, at: datetime) -> bool:
        return self.from_at <= at and (self.until is None or at < self.until)


def current(periods: Iterable[AwayPeriod], now: datetime) -> AwayPeriod | None:
    """The period in force at ``now`` that lasts longest (no end beats any end); None: here."""
    live = [p for p in periods if p.covers(now)]
    if not live:
        return None
    return max(live, key=lambda p: (p.until is None, p.until or now, p.key))


def status_marks_away(emoji: str, text: str, markers: Sequence[str]) -> str | None:
    """The marker a Slack status matches (its emoji exactly, or its text containing the marker,
    case ignored); None when it matches none."""
    for marker in markers:
        wanted = marker.strip().lower()
        if not wanted:
            continue
        if emoji.strip().lower() == wanted or wanted in text.lower():
            return marker
    return None


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone)


def config_periods(away: AwayConfig, email: str, timezone: str) -> list[AwayPeriod]:
    """The config's ``away.reps`` entries for this rep, dates read in ``timezone``."""
    zone = ZoneInfo(timezone)

    def instant(value: date | datetime) -> datetime:
        return value if isinstance(value, datetime) else _day_start(value, zone)

    return [
        AwayPeriod(
            email.lower(),
            CONFIG,
            instant(entry.from_),
            instant(entry.until),
            f"config:{index}:{instant(entry.from_).isoformat()}",
            f"away.reps[{index}]",
        )
        for index, entry in enumerate(away.reps)
        if entry.email.lower() == email.lower()
    ]


class BadUntil(ValueError):
    """What the rep typed after ``/sla away`` is not an end we can read (the message says why
    and what is accepted)."""


def parse_until(text: str, now: datetime, timezone: str) -> datetime:
    """When ``/sla away <text>`` ends, read in ``timezone``; :class:`BadUntil` otherwise."""
    wanted = text.strip().lower().removeprefix("until ").strip()
    if not wanted:
        raise BadUntil(f"Say until when: {UNTIL_HINT}.")
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    until: datetime
    if wanted == "tomorrow":
        until = _day_start(today + timedelta(days=1), zone)
    elif wanted[:3] in _WEEKDAYS and wanted in (wanted[:3], _full_day(wanted[:3])):
        ahead = (_WEEKDAYS.index(wanted[:3]) - today.weekday()) % 7 or 7
        until = _day_start(today + timedelta(days=ahead), zone)
    elif wanted[:1].isdigit() and "-" in wanted:
        try:
            until = _day_start(date.fromisoformat(wanted), zone)
        except ValueError:
            raise BadUntil(f'"{text.strip()}" is not a date like 2026-12-24.') from None
    else:
        try:
            length = parse_wall_duration(wanted)
        except ValueError:
            raise BadUntil(f'"{text.strip()}" is not {UNTIL_HINT}.') from None
        until = now + length
    if until <= now:
        raise BadUntil(f'"{text.strip()}" is not in the future.')
    if until - now > MAX_AWAY_FOR:
        raise BadUntil(f'"{text.strip()}" is more than a year away.')
    return until


def _full_day(short: str) -> str:
    return {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }[short]


def until_words(until: datetime | None, timezone: str) -> str:
    """``until Thu 24 Dec`` for an end at a day's start in ``timezone``, else with the time
    (``until Thu 24 Dec 13:00 CET``); ``until further notice`` for no end."""
    if until is None:
        return "until further notice"
    local = until.astimezone(ZoneInfo(timezone))
    if local.time() == time(0):
        return "until " + local.strftime("%a %d %b")
    return "until " + local.strftime("%a %d %b %H:%M ") + (local.tzname() or timezone)
