"""Business-time arithmetic: weekends, holidays, lunch breaks, DST days in two zones, year ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.sla.sla_factories import ALWAYS, AMER, BERLIN, EMEA, NEW_YORK, local
from worker.sla import BusinessCalendar, BusinessSpan

H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("calendar", "start", "duration", "expected"),
    [
        # Friday 16:30 with hours to 17:00: 30 minutes on Friday, 30 on Monday.
        (AMER, local(NEW_YORK, 2026, 1, 9, 16, 30), H, local(NEW_YORK, 2026, 1, 12, 9, 30)),
        # An hour that ends exactly at closing time is due at closing time.
        (AMER, local(NEW_YORK, 2026, 1, 9, 16, 0), H, local(NEW_YORK, 2026, 1, 9, 17, 0)),
        # Outside hours: the clock starts at the next opening.
        (AMER, local(NEW_YORK, 2026, 1, 10, 11, 0), H, local(NEW_YORK, 2026, 1, 12, 10, 0)),
        # US Independence Day 2025 is a Friday: Thursday 16:30 + 1h lands on Monday.
        (AMER, local(NEW_YORK, 2025, 7, 3, 16, 30), H, local(NEW_YORK, 2025, 7, 7, 9, 30)),
        # Berlin Christmas: 24 Dec is a working day, 25/26 Dec holidays, then the weekend.
        (EMEA, local(BERLIN, 2026, 12, 24, 17, 0), H, local(BERLIN, 2026, 12, 28, 9, 30)),
        # Split shift: the lunch break 12:30-13:30 does not count.
        (EMEA, local(BERLIN, 2026, 1, 12, 12, 0), H, local(BERLIN, 2026, 1, 12, 14, 0)),
        # Spring forward in Berlin (29 Mar 2026) over the weekend: Monday 09:30 summer time.
        (EMEA, local(BERLIN, 2026, 3, 27, 17, 0), H, local(BERLIN, 2026, 3, 30, 9, 30)),
        # Spring forward in New York (8 Mar 2026): Monday 09:30 EDT, 13:30 UTC.
        (AMER, local(NEW_YORK, 2026, 3, 6, 16, 30), H, datetime(2026, 3, 9, 13, 30, tzinfo=UTC)),
        # Fall back in New York (1 Nov 2026): Monday 09:30 EST, 14:30 UTC.
        (AMER, local(NEW_YORK, 2026, 10, 30, 16, 30), H, datetime(2026, 11, 2, 14, 30, tzinfo=UTC)),
        # Year end: 31 Dec 17:00 is closed, 1 Jan 2027 (Friday) is a holiday.
        (AMER, local(NEW_YORK, 2026, 12, 31, 17, 0), H, local(NEW_YORK, 2027, 1, 4, 10, 0)),
        # 12 business hours from Friday 13:00: 4 on Friday, 8 on Monday, due at Monday's close.
        (AMER, local(NEW_YORK, 2026, 1, 9, 13, 0), 12 * H, local(NEW_YORK, 2026, 1, 12, 17, 0)),
        # 24x7: business time is elapsed time, even across a year end.
        (
            ALWAYS,
            datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
            2 * H,
            datetime(2027, 1, 1, 1, 0, tzinfo=UTC),
        ),
    ],
)
def test_add_counts_only_open_time(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, expected: datetime
) -> None:
    assert calendar.add(start, duration) == expected
    assert calendar.between(start, expected) == duration
    assert calendar.subtract(expected, duration) <= start


def test_a_day_open_around_the_clock_lasts_23_and_25_hours_on_dst_days() -> None:
    for zone, spring, autumn in (
        ("Europe/Berlin", date(2026, 3, 29), date(2026, 10, 25)),
        ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),
    ):
        calendar = BusinessCalendar(
            name="support", timezone=zone, weekly_hours={d: [(0, 1440)] for d in range(7)}
        )
        for day, hours in ((spring, 23), (autumn, 25)):
            midnight = datetime(day.year, day.month, day.day, tzinfo=calendar_zone(zone))
            next_midnight = midnight.replace(day=day.day + 1)
            assert calendar.between(midnight, next_midnight) == timedelta(hours=hours)


def calendar_zone(zone: str) -> ZoneInfo:
    return BERLIN if zone == "Europe/Berlin" else NEW_YORK


def test_hours_inside_the_spring_forward_gap_open_when_the_clock_jumps() -> None:
    night = BusinessCalendar(
        name="night", timezone="Europe/Berlin", weekly_hours={6: [(150, 300)]}
    )  # Sundays 02:30-05:00
    # On 29 Mar 2026 the clock jumps 02:00 -> 03:00: open from 03:00 CEST (01:00 UTC) to 05:00.
    assert night.next_open_at(datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )
    assert night.between(
        datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)
    ) == timedelta(hours=2)


def test_a_window_closing_in_the_repeated_hour_closes_at_its_second_occurrence() -> None:
    late = BusinessCalendar(
        name="late", timezone="America/New_York", weekly_hours={6: [(0, 90)]}
    )  # Sundays 00:00-01:30
    # 1 Nov 2026: 01:30 happens twice; open 00:00 EDT (04:00 UTC) to 01:30 EST (06:30 UTC).
    day = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    assert late.between(*day) == timedelta(hours=2, minutes=30)


@pytest.mark.parametrize(
    ("calendar", "start", "span", "expected"),
    [
        # Same local clock time two business days later.
        (
            AMER,
            local(NEW_YORK, 2026, 1, 13, 10, 0),
            BusinessSpan(days=2),
            local(NEW_YORK, 2026, 1, 15, 10, 0),
        ),
        # Friday + 1 business day is Monday.
        (
            AMER,
            local(NEW_YORK, 2026, 1, 9, 16, 30),
            BusinessSpan(days=1),
            local(NEW_YORK, 2026, 1, 12, 16, 30),
        ),
        # Assigned on Saturday: whole business days count from Monday's opening.
        (
            AMER,
            local(NEW_YORK, 2026, 1, 10, 10, 0),
            BusinessSpan(days=1),
            local(NEW_YORK, 2026, 1, 13, 9, 0),
        ),
        # Days, then open time: Tuesday 15:00 + 4h = 2h Tuesday + 2h Wednesday.
        (
            AMER,
            local(NEW_YORK, 2026, 1, 12, 15, 0),
            BusinessSpan(days=1, time=4 * H),
            local(NEW_YORK, 2026, 1, 14, 11, 0),
        ),
        # Holidays are not business days: 23 Dec + 2d skips 25/26 Dec and the weekend.
        (
            EMEA,
            local(BERLIN, 2026, 12, 23, 10, 0),
            BusinessSpan(days=2),
            local(BERLIN, 2026, 12, 28, 10, 0),
        ),
        # Same clock time across spring forward: 09:00 CET Friday -> 09:00 CEST Monday.
        (
            EMEA,
            local(BERLIN, 2026, 3, 27, 9, 0),
            BusinessSpan(days=1),
            local(BERLIN, 2026, 3, 30, 9, 0),
        ),
        # Landing in the lunch break moves to the afternoon opening.
        (
            EMEA,
            local(BERLIN, 2026, 1, 12, 12, 45),
            BusinessSpan(days=1),
            local(BERLIN, 2026, 1, 13, 13, 30),
        ),
        # A zero span leaves the instant as it is (escalation "after: 0m" is the breach itself).
        (
            AMER,
            local(NEW_YORK, 2026, 1, 9, 17, 0),
            BusinessSpan(),
            local(NEW_YORK, 2026, 1, 9, 17, 0),
        ),
    ],
)
def test_advance_moves_business_days_then_open_time(
    calendar: BusinessCalendar, start: datetime, span: BusinessSpan, expected: datetime
) -> None:
    assert calendar.advance(start, span) == expected


def test_retreat_mirrors_advance() -> None:
    deadline = local(NEW_YORK, 2026, 1, 12, 16, 30)
    assert AMER.retreat(deadline, BusinessSpan(days=1)) == local(NEW_YORK, 2026, 1, 9, 16, 30)
    # A closing instant stands for the end of its day: Friday 17:00 - 1d = Thursday 17:00.
    friday_close = local(NEW_YORK, 2026, 1, 9, 17, 0)
    assert AMER.retreat(friday_close, BusinessSpan(days=1)) == local(NEW_YORK, 2026, 1, 8, 17, 0)


def test_is_open_and_next_open_at() -> None:
    assert EMEA.is_open(local(BERLIN, 2026, 1, 12, 9, 0))
    assert not EMEA.is_open(local(BERLIN, 2026, 1, 12, 12, 30))  # lunch starts
    assert EMEA.next_open_at(local(BERLIN, 2026, 1, 12, 12, 45)) == local(
        BERLIN, 2026, 1, 12, 13, 30
    )
    assert EMEA.next_open_at(local(BERLIN, 2026, 1, 12, 10, 0)) == local(BERLIN, 2026, 1, 12, 10, 0)
    assert not EMEA.is_open(local(BERLIN, 2026, 12, 25, 10, 0))  # Christmas Day
    assert ALWAYS.is_open(datetime(2026, 12, 25, 10, tzinfo=UTC))


def test_between_is_zero_when_end_is_not_after_start() -> None:
    start = local(BERLIN, 2026, 1, 12, 10, 0)
    assert EMEA.between(start, start) == timedelta(0)
    assert EMEA.between(start, start - H) == timedelta(0)


def test_extra_closed_dates_are_not_business_days() -> None:
    offsite = BusinessCalendar(
        name="offsite",
        timezone="America/New_York",
        weekly_hours={d: [(540, 1020)] for d in range(5)},
        closed_dates=[date(2026, 1, 12)],
    )
    start = local(NEW_YORK, 2026, 1, 9, 16, 30)
    assert offsite.add(start, H) == local(NEW_YORK, 2026, 1, 13, 9, 30)
    assert not offsite.is_business_day(date(2026, 1, 12))


def test_calendar_arithmetic_spans_many_years_exactly() -> None:
    start = local(BERLIN, 2026, 6, 1, 10, 0)
    ten_years = timedelta(hours=20_000)
    end = EMEA.add(start, ten_years)
    assert end.year >= 2035
    assert EMEA.between(start, end) == ten_years
    assert EMEA.subtract(end, ten_years) == start


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weekly_hours": {}},
        {"weekly_hours": {0: [(600, 540)]}},
        {"weekly_hours": {0: [(540, 800), (700, 900)]}},
        {"weekly_hours": {7: [(540, 600)]}},
        {"weekly_hours": {0: [(540, 600)]}, "timezone": "Mars/Olympus"},
        {"weekly_hours": {0: [(540, 600)]}, "holidays_country": "XX"},
    ],
)
def test_bad_calendar_config_is_a_value_error(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "bad", "timezone": "UTC", **kwargs}
    with pytest.raises(ValueError):
        BusinessCalendar(**args)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        AMER.add(datetime(2026, 1, 9, 16, 30), H)
    with pytest.raises(ValueError):
        AMER.add(local(NEW_YORK, 2026, 1, 9, 16, 30), -M)
