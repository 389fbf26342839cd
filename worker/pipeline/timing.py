"""When a notification may go out: grouping window, quiet hours, digest times. Pure.

Reminders to people wait for working hours on the calendar that applies to them; digest
levels wait for the next digest time on a business day of the team's calendar. No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from worker.sla import BusinessCalendar

#: How far ahead a digest time is searched for (a team closed longer gets none until then).
DIGEST_HORIZON_DAYS = 60


def next_digest_at(now: datetime, calendar: BusinessCalendar, minutes: Sequence[int]) -> datetime:
    """The first digest time at or after ``now`` on a business day, in the calendar's zone.

    With no digest times configured, digests go out at once.
    """
    if not minutes:
        return now
    zone = ZoneInfo(calendar.timezone)
    today = now.astimezone(zone).date()
    for offset in range(DIGEST_HORIZON_DAYS):
        day = today + timedelta(days=offset)
        if not calendar.is_business_day(day):
            continue
        for minute in sorted(minutes):
            local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
            at = local.astimezone(now.tzinfo)
            if at >= now:
                return at
    return now


def direct_due_at(
    now: datetime, calendar: BusinessCalendar, *, group_wait: timedelta, quiet: bool
) -> datetime:
    """After the grouping window, and inside working hours when quiet hours apply."""
    due = now + group_wait
    return calendar.next_open_at(due) if quiet else due
