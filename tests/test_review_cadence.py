"""The review's cadence (weekly, then monthly; every other week) and its "biggest changes"."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.period_figures import MarketingPeriod, Pace, PeriodFigures, Segment
from worker.review_cadence import ReviewPlan, biggest_changes, latest_due, parse_at

BERLIN = ZoneInfo("Europe/Berlin")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), BERLIN).astimezone(UTC)


def plan(every: str = "1w", then: tuple[timedelta, str] | None = None) -> ReviewPlan:
    weekday, clock = parse_at("Mon 09:00")
    return ReviewPlan(
        every, weekday, clock, BERLIN, then[0] if then else None, then[1] if then else None
    )


def test_weekly_reviews_look_back_on_the_week_before_their_monday() -> None:
    due = latest_due(plan(), at(date(2026, 3, 30), 9, 30), None)
    assert due.slot == at(date(2026, 3, 30), 9)
    assert due.period.label == "week 2026-W13"
    # The clocks went forward on the 29th: the week is an hour short, midnight to midnight.
    assert due.period.end - due.period.start == timedelta(days=7, hours=-1)
    before_nine = latest_due(plan(), at(date(2026, 3, 30), 8, 59), None)
    assert before_nine.period.label == "week 2026-W12"
    wednesday = latest_due(plan(), at(date(2026, 4, 1), 12), None)
    assert wednesday == due


def test_after_eight_weeks_the_review_is_monthly_on_the_first_monday() -> None:
    weekly_then_monthly = plan("1w", (timedelta(weeks=8), "1mo"))
    first = at(date(2026, 1, 5), 9)
    seven_weeks = latest_due(weekly_then_monthly, at(date(2026, 2, 23), 10), first)
    assert seven_weeks.period.label == "week 2026-W08"
    monthly = latest_due(weekly_then_monthly, at(date(2026, 3, 2), 9, 5), first)
    assert (monthly.slot, monthly.period.label) == (at(date(2026, 3, 2), 9), "February 2026")
    # A week later the latest slot is still the first Monday of March: nothing new is due.
    assert latest_due(weekly_then_monthly, at(date(2026, 3, 9), 10), first) == monthly
    april = latest_due(weekly_then_monthly, at(date(2026, 4, 6), 9), first)
    assert april.period.label == "March 2026"


def test_every_other_week_counts_from_the_first_review() -> None:
    fortnightly = plan("2w")
    first = at(date(2026, 3, 2), 9)
    off_week = latest_due(fortnightly, at(date(2026, 3, 9), 10), first)
    assert (off_week.slot, off_week.period.label) == (first, "2026-02-16..2026-03-01")
    on_week = latest_due(fortnightly, at(date(2026, 3, 16), 10), first)
    assert on_week.period.label == "2026-03-02..2026-03-15"


@pytest.mark.parametrize("text", ["Monday", "Mon", "Mo 09:00", "Mon 9h"])
def test_a_bad_review_time_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"Mon 09:00|is not a time"):
        parse_at(text)


def figures(
    met: int, late: int, breached: int, median_minutes: int, teams: dict[str, tuple[int, int]]
) -> PeriodFigures:
    result = PeriodFigures("week")
    result.total = Segment(met=met, met_late=late, breached=breached)
    result.total.to_first_touch = [timedelta(minutes=median_minutes)]
    result.total.breaches["first_touch"] = late + breached
    for name, (team_met, team_missed) in teams.items():
        result.by["team"][name] = Segment(met=team_met, breached=team_missed)
    result.marketing = MarketingPeriod("created", Pace(delivered=met + late + breached, quota=10))
    return result


def test_the_biggest_changes_are_named_largest_first() -> None:
    last = figures(8, 1, 1, 60, {"emea": (5, 0), "americas": (3, 2)})
    this = figures(6, 2, 2, 90, {"emea": (3, 3), "americas": (3, 1)})

    assert biggest_changes(this, last) == [
        "Missed deadlines rose from 2 to 4",  # +100 %
        "Median time to first touch rose from 1h to 1h30m (+50 %)",
        "First touch on time for team emea fell from 100 % to 50 % (-50 pt)",
    ]
    assert biggest_changes(last, last) == []
