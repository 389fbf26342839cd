"""Lengths of business time as written in the SLA ("2d", "4h", "1d4h").

A span is plain data; the calendar gives it meaning. This module must never do calendar maths,
read the clock or know about time zones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class BusinessSpan:
    """A length of business time: whole business days plus open time.

    Config "2d" -> days=2; "4h" -> time=4h; "1d4h" -> both. ``BusinessCalendar.advance`` moves
    ``days`` business days first (same local clock time), then adds ``time`` of open time.
    """

    days: int = 0
    time: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.days < 0 or self.time < timedelta(0):
            raise ValueError(f"a business span cannot be negative: {self!r}")

    @property
    def is_zero(self) -> bool:
        return self.days == 0 and not self.time

    @property
    def time_us(self) -> int:
        """``time`` in whole microseconds, the unit of the calendar's internal arithmetic."""
        return self.time // _ONE_US

    def __str__(self) -> str:
        """The config spelling: "2d", "4h", "1d4h30m", "0m"."""
        parts = [f"{self.days}d"] if self.days else []
        seconds = int(self.time.total_seconds())
        hours, rest = divmod(seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        parts += [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v]
        return "".join(parts) or "0m"

    def in_words(self) -> str:
        """Plain words for messages: "21 business days", "4 business hours", "1 business day 2h"."""
        if self.days and not self.time:
            return f"{self.days} business day{'s' if self.days != 1 else ''}"
        if not self.days and self.time and self.time % timedelta(hours=1) == timedelta(0):
            hours = self.time // timedelta(hours=1)
            return f"{hours} business hour{'s' if hours != 1 else ''}"
        return f"{self} of business time"
