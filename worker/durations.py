"""Parsing of the durations admins write in the config: ``90m``, ``4h``, ``2d``, ``1d4h``, ``15s``.

Pure text → numbers; it knows nothing of calendars. Whole days are kept apart from hours and
minutes because on a business calendar "2d" means two business days, not 48 open hours.
"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*(d|h|m|s)")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[dhms]\s*)+$")
_UNITS = {"h": 3600, "m": 60, "s": 1}

DURATION_HINT = "a duration like 90m, 4h, 2d or 1d4h"


def parse_duration_parts(text: str) -> tuple[int, timedelta]:
    """``"1d4h30m"`` → ``(1, timedelta(hours=4, minutes=30))``; ValueError on anything else."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f'"{text}" is not {DURATION_HINT}')
    days = 0
    seconds = 0
    seen: set[str] = set()
    for number, unit in _PART.findall(text):
        if unit in seen:
            raise ValueError(f'"{text}" repeats the unit "{unit}"; write {DURATION_HINT}')
        seen.add(unit)
        if unit == "d":
            days = int(number)
        else:
            seconds += int(number) * _UNITS[unit]
    return days, timedelta(seconds=seconds)


_WEEKS = re.compile(r"^\s*(\d+)\s*w\s*$")


def parse_wall_duration(text: str) -> timedelta:
    """A plain length of time (schedules, time-to-live): days count as 24 hours; whole weeks
    (``8w``) too, here only: on a business calendar a week is no number of business days."""
    weeks = _WEEKS.match(text) if isinstance(text, str) else None
    if weeks:
        return timedelta(weeks=int(weeks.group(1)))
    days, time = parse_duration_parts(text)
    return timedelta(days=days) + time


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` → ``"1h30m"`` (for messages and logs)."""
    total = int(value.total_seconds())
    if total == 0:
        return "0m"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
