from datetime import timedelta

import pytest

from worker.durations import format_duration, parse_duration_parts, parse_wall_duration


@pytest.mark.parametrize(
    ("text", "days", "time"),
    [
        ("90m", 0, timedelta(minutes=90)),  # minutes only
        ("4h", 0, timedelta(hours=4)),  # hours only
        ("2d", 2, timedelta(0)),  # days stay days: business days on a calendar
        ("1d4h30m", 1, timedelta(hours=4, minutes=30)),  # combined
        ("15s", 0, timedelta(seconds=15)),  # seconds for schedules
        (" 1h 30m ", 0, timedelta(hours=1, minutes=30)),  # spaces tolerated
        ("0m", 0, timedelta(0)),  # zero is a valid delay
    ],
)
def test_durations_parse_into_days_and_time(text: str, days: int, time: timedelta) -> None:
    assert parse_duration_parts(text) == (days, time)


@pytest.mark.parametrize("text", ["4x", "", "h", "1.5h", "-1h", "4 hours", "1h1h", "4"])
def test_a_bad_duration_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="like 90m, 4h, 2d"):
        parse_duration_parts(text)


def test_wall_durations_count_a_day_as_24_hours() -> None:
    assert parse_wall_duration("1d2h") == timedelta(hours=26)


def test_wall_durations_take_whole_weeks_where_business_spans_do_not() -> None:
    assert parse_wall_duration("8w") == timedelta(days=56)
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration_parts("1w")  # a business span: a week is no number of business days


def test_format_duration_reads_back() -> None:
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(0)) == "0m"
    assert parse_wall_duration(format_duration(timedelta(days=2, minutes=5))) == timedelta(
        days=2, minutes=5
    )
