"""When the review meeting's post is due, which period it covers, and the biggest changes since
the last review, in words. No I/O here.

The agreement's ``review: {every: 1w, then: {after: 8w, every: 1mo}, at: "Mon 09:00"}``: every
Monday at 09:00 (the review's time zone) the week before is posted; once the first review is
eight weeks old, the first Monday of each month posts the month before. ``2w`` posts the two
weeks before every other Monday, counted from the first review. Only the latest slot is ever
due: a worker that was down for three weeks posts the last week, not three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from worker.durations import format_duration
from worker.period_figures import PeriodFigures, Segment
from worker.periods import Period, days_between, month_of, week_of

#: Cadences a review may have.
EVERY = ("1w", "2w", "1mo")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class ReviewPlan:
    every: str
    weekday: int  # 0 = Monday
    at: time
    zone: ZoneInfo
    then_after: timedelta | None = None
    then_every: str | None = None

    def cadence(self, now: datetime, first_posted: datetime | None) -> str:
        """The cadence in force: ``then_every`` once the first review is ``then_after`` old."""
        if (
            self.then_every
            and self.then_after is not None
            and first_posted is not None
            and now - first_posted >= self.then_after
        ):
            return self.then_every
        return self.every


@dataclass(frozen=True)
class Due:
    """A review slot that has come: when, and the period it looks back on."""

    slot: datetime
    period: Period


def parse_at(text: str) -> tuple[int, time]:
    """``"Mon 09:00"`` → (0, 09:00); a ValueError that says what is expected."""
    day, _, clock = text.strip().partition(" ")
    if day[:3].lower() not in WEEKDAYS or not clock:
        raise ValueError(f'"{text}" is not a weekday and a time like "Mon 09:00"')
    try:
        at = time.fromisoformat(clock.strip())
    except ValueError:
        raise ValueError(f'"{text}": "{clock}" is not a time like 09:00') from None
    return WEEKDAYS.index(day[:3].lower()), at


def latest_due(plan: ReviewPlan, now: datetime, first_posted: datetime | None) -> Due:
    """The latest slot at or before ``now`` and its period (posted or not: the caller knows)."""
    local = now.astimezone(plan.zone)
    cadence = plan.cadence(now, first_posted)
    if cadence == "1mo":
        slot_day = _first_weekday(local.date().replace(day=1), plan.weekday)
        if _at(slot_day, plan) > now:
            slot_day = _first_weekday(_month_before(local.date().replace(day=1)), plan.weekday)
        return Due(_at(slot_day, plan), month_of(_month_before(slot_day.replace(day=1)), plan.zone))
    slot_day = local.date() - timedelta(days=(local.weekday() - plan.weekday) % 7)
    if _at(slot_day, plan) > now:
        slot_day -= timedelta(days=7)
    weeks = 2 if cadence == "2w" else 1
    if weeks == 2 and first_posted is not None:
        anchor = first_posted.astimezone(plan.zone).date()
        if ((slot_day - anchor).days // 7) % 2:
            slot_day -= timedelta(days=7)  # the off week: the last slot was a week earlier
    first = slot_day - timedelta(days=7 * weeks)
    if weeks == 1 and plan.weekday == 0:
        return Due(_at(slot_day, plan), week_of(first, plan.zone))  # an ISO week: "week 2026-W13"
    return Due(_at(slot_day, plan), days_between(first, slot_day - timedelta(days=1), plan.zone))


def _at(day: date, plan: ReviewPlan) -> datetime:
    return datetime.combine(day, plan.at, plan.zone)


def _first_weekday(first_of_month: date, weekday: int) -> date:
    return first_of_month + timedelta(days=(weekday - first_of_month.weekday()) % 7)


def _month_before(first_of_month: date) -> date:
    return (first_of_month - timedelta(days=1)).replace(day=1)


# --- the biggest changes since the last review ------------------------------------------------


@dataclass(frozen=True)
class Change:
    score: float  # how big, to rank: percentage points, or per cent of the earlier value
    text: str


#: Deadlines decided in both periods before a share's change is worth a sentence.
MIN_DECIDED = 3


def biggest_changes(now: PeriodFigures, before: PeriodFigures, count: int = 3) -> list[str]:
    """Up to ``count`` sentences on what moved most between the two periods (none below 5
    points or 5 %): first-touch compliance overall, per team and per rep, the median time to
    first touch, missed deadlines, escalations and quota attainment. Names are as given: the
    caller escapes them for its markup."""
    changes = [
        *_share_change("First touch on time", now.total, before.total),
        *_time_change(now.total, before.total),
        *_count_change("Missed deadlines", _missed(now.total), _missed(before.total)),
        *_count_change("Escalations", now.total.escalations, before.total.escalations),
    ]
    for dimension, label in (("team", "team"), ("rep", "")):
        for name, segment in now.by[dimension].items():
            earlier = before.by[dimension].get(name)
            if earlier is not None:
                who = f"{label} {name}".strip()
                changes += _share_change(f"First touch on time for {who}", segment, earlier)
    if now.marketing is not None and before.marketing is not None:
        changes += _pp_change(
            "Quota attained",
            now.marketing.total.attainment,
            before.marketing.total.attainment,
        )
    ranked = sorted(changes, key=lambda change: -change.score)
    return [change.text for change in ranked if change.score >= 5][:count]


def _missed(segment: Segment) -> int:
    return sum(segment.breaches.values())


def _share_change(what: str, now: Segment, before: Segment) -> list[Change]:
    if now.decided < MIN_DECIDED or before.decided < MIN_DECIDED:
        return []
    return _pp_change(what, now.first_touch_met_share, before.first_touch_met_share)


def _pp_change(what: str, now: float | None, before: float | None) -> list[Change]:
    if now is None or before is None:
        return []
    points = round(100 * (now - before))
    if points == 0:
        return []
    verb = "rose" if points > 0 else "fell"
    return [
        Change(
            abs(points),
            f"{what} {verb} from {100 * before:.0f} % to {100 * now:.0f} % ({points:+d} pt)",
        )
    ]


def _time_change(now: Segment, before: Segment) -> list[Change]:
    new, old = now.median_to_first_touch, before.median_to_first_touch
    if new is None or old is None or not old:
        return []
    relative = round(100 * (new - old) / old)
    if relative == 0:
        return []
    verb = "rose" if relative > 0 else "fell"  # slower is worse: said plainly, not coloured
    return [
        Change(
            abs(relative),
            f"Median time to first touch {verb} from {format_duration(old)} to "
            f"{format_duration(new)} ({relative:+d} %)",
        )
    ]


def _count_change(what: str, now: int, before: int) -> list[Change]:
    if now == before or max(now, before) < MIN_DECIDED:
        return []
    relative = 100 * (now - before) / max(before, 1)
    verb = "rose" if now > before else "fell"
    return [Change(min(abs(relative), 200), f"{what} {verb} from {before} to {now}")]
