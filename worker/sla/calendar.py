"""Business calendars: which instants are open, and business-time arithmetic over them.

A calendar turns weekly opening hours in one time zone, minus public holidays and extra closed
dates, into sorted open intervals in UTC epoch microseconds with cumulative business time, so that
every operation is a couple of ``bisect`` calls on integers and exact to the microsecond. Intervals
are built lazily, one local year at a time, and cached. This module must never read the clock, do
I/O beyond the ``holidays`` tables, or use naive datetimes: every instant in and out is aware UTC.

Edge cases, decided once here:

* Opening hours are wall-clock hours in the calendar's zone, so a 00:00-24:00 day lasts 23 h on
  the spring-forward day and 25 h on the fall-back day.
* A wall time that does not exist (inside a spring-forward gap) means the instant the clock jumps;
  an ambiguous wall time (fall-back) means its first occurrence when it opens a window and its
  second occurrence when it closes one.
* Open intervals are half-open ``[opens, closes)``: 17:00 is closed when hours end at 17:00.
* ``add(s, d)`` (d > 0) is the *earliest* instant at which d of open time has passed since s, so
  an hour that ends exactly at closing time is due at closing time, not at the next opening.
  ``subtract`` uses the same convention, which makes it the exact inverse of ``add``.
* ``add``/``subtract``/``advance``/``retreat`` by zero return the instant unchanged.
* ``advance(s, BusinessSpan(days=N, time=T))``: a closed ``s`` first moves to the next opening
  (so a lead assigned on Saturday gets whole business days from Monday's opening); then the same
  local clock time N business days later (a business day is a day with open hours that is not a
  holiday or closed date); if that instant is closed (shorter hours, lunch break), the next
  opening; then T of open time is added.
* ``retreat`` is ``advance`` mirrored: T of open time back, then N business days back at the same
  local clock time; a closed instant stands for the end of the open interval before it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from worker.sla.spans import BusinessSpan

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
MINUTE_US = 60_000_000
DAY_US = 86_400_000_000
# datetime cannot represent local midnights outside these years in every zone.
_FIRST_YEAR = 2
_LAST_YEAR = 9997


def to_us(at: datetime) -> int:
    """Aware datetime -> integer UTC epoch microseconds. Naive datetimes are a ValueError."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: the SLA engine needs timezone-aware UTC")
    return (at - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    """Integer UTC epoch microseconds -> aware UTC datetime (exact)."""
    if us % 1_000_000:
        return EPOCH + timedelta(0, 0, us)
    # Whole seconds (most deadlines): fromtimestamp of an int is exact and the fastest path.
    return datetime.fromtimestamp(us // 1_000_000, UTC)


class _Year:
    """One local calendar year, converted: open intervals and local midnights in UTC us."""

    __slots__ = ("business", "day_starts", "intervals", "open_us")

    def __init__(
        self, intervals: list[tuple[int, int]], day_starts: list[int], business: list[bool]
    ) -> None:
        self.intervals = intervals
        self.day_starts = day_starts
        self.business = business
        self.open_us = sum(b - a for a, b in intervals)


class _Table:
    """An immutable snapshot covering local years [first_year, last_year] as flat int arrays."""

    __slots__ = (
        "bday_days",
        "bday_prefix",
        "cum_ends",
        "cums",
        "day_starts",
        "day_uneven",
        "ends",
        "first_ordinal",
        "first_year",
        "hi",
        "last_year",
        "lo",
        "starts",
        "total",
    )

    def __init__(self, first_year: int, last_year: int, years: Mapping[int, _Year]) -> None:
        self.first_year = first_year
        self.last_year = last_year
        self.first_ordinal = date(first_year, 1, 1).toordinal()
        starts: list[int] = []
        ends: list[int] = []
        day_starts: list[int] = []
        business: list[bool] = []
        for year in range(first_year, last_year + 1):
            piece = years[year]
            for a, b in piece.intervals:
                # Merge touching or overlapping windows (24x7, shifts over midnight, fall-back
                # ends) so that the arrays stay strictly increasing.
                if ends and a <= ends[-1]:
                    ends[-1] = max(ends[-1], b)
                else:
                    starts.append(a)
                    ends.append(b)
            day_starts.extend(piece.day_starts)
            business.extend(piece.business)
        cums: list[int] = []
        cum_ends: list[int] = []
        running = 0
        for a, b in zip(starts, ends, strict=True):
            cums.append(running)
            running += b - a
            cum_ends.append(running)
        self.starts = starts
        self.ends = ends
        self.cums = cums
        self.cum_ends = cum_ends
        self.total = running
        self.lo = day_starts[0]
        self.hi = years[last_year + 1].day_starts[0]
        day_starts.append(self.hi)
        self.day_starts = day_starts
        self.day_uneven = [
            day_starts[i + 1] - day_starts[i] != DAY_US for i in range(len(business))
        ]
        prefix = [0]
        bday_days: list[int] = []
        for index, is_business in enumerate(business):
            if is_business:
                bday_days.append(index)
            prefix.append(len(bday_days))
        self.bday_prefix = prefix
        self.bday_days = bday_days

    def pos(self, t: int) -> int:
        """Business time from ``lo`` to ``t``."""
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            return 0
        end = self.ends[i]
        return self.cums[i] + (t if t < end else end) - self.starts[i]

    def locate(self, target: int) -> int:
        """The earliest instant whose ``pos`` is ``target`` (0 < target <= total)."""
        j = bisect_left(self.cum_ends, target)
        return self.starts[j] + target - self.cums[j]


class BusinessCalendar:
    """Weekly opening hours in one time zone, minus holidays and closed dates.

    ``weekly_hours`` maps weekday (0 = Monday) to sorted, non-overlapping ``(start_minute,
    end_minute)`` windows in local wall-clock minutes, 0..1440 (1440 = 24:00). See the module
    docstring for how DST, closing instants and day spans are handled.
    """

    __slots__ = (
        "_closed",
        "_country",
        "_subdivision",
        "_table",
        "_weekly",
        "_years",
        "_zone",
        "name",
        "timezone",
    )

    def __init__(
        self,
        *,
        name: str,
        timezone: str,
        weekly_hours: Mapping[int, Sequence[tuple[int, int]]],
        holidays_country: str | None = None,
        holidays_subdivision: str | None = None,
        closed_dates: Iterable[date] = (),
    ) -> None:
        self.name = name
        self.timezone = timezone
        try:
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"calendar {name!r}: unknown time zone {timezone!r}") from e
        self._weekly = _checked_weekly_hours(name, weekly_hours)
        if holidays_country is None and holidays_subdivision is not None:
            raise ValueError(f"calendar {name!r}: a holiday subdivision needs a country")
        if holidays_country is not None:
            try:
                holidays_lib.country_holidays(holidays_country, subdiv=holidays_subdivision)
            except NotImplementedError as e:
                raise ValueError(
                    f"calendar {name!r}: no holidays for {holidays_country!r}"
                    f" subdivision {holidays_subdivision!r}"
                ) from e
        self._country = holidays_country
        self._subdivision = holidays_subdivision
        self._closed = frozenset(closed_dates)
        self._years: dict[int, _Year] = {}
        self._table: _Table | None = None

    @classmethod
    def always_open(cls, name: str = "24x7") -> BusinessCalendar:
        """A UTC calendar that is open all the time (business time == elapsed time)."""
        return cls(name=name, timezone="UTC", weekly_hours={d: [(0, 1440)] for d in range(7)})

    def __repr__(self) -> str:
        return f"BusinessCalendar(name={self.name!r}, timezone={self.timezone!r})"

    # -- public API: aware datetimes in and out ------------------------------------------------

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which ``duration`` of open time has passed since ``start``."""
        return from_us(self.add_us(to_us(start), _duration_us(duration)))

    def subtract(self, end: datetime, duration: timedelta) -> datetime:
        """The earliest instant from which ``duration`` of open time passes until ``end``."""
        return from_us(self.subtract_us(to_us(end), _duration_us(duration)))

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Open time in ``[start, end)``; zero if ``end <= start``."""
        return timedelta(microseconds=self.between_us(to_us(start), to_us(end)))

    def advance(self, start: datetime, span: BusinessSpan) -> datetime:
        """``span.days`` business days at the same local clock time, then ``span.time`` open."""
        return from_us(self.advance_us(to_us(start), span.days, span.time_us))

    def retreat(self, end: datetime, span: BusinessSpan) -> datetime:
        """The mirror of ``advance``: ``span.time`` of open time back, then ``span.days``."""
        return from_us(self.retreat_us(to_us(end), span.days, span.time_us))

    def is_open(self, at: datetime) -> bool:
        t = to_us(at)
        return self.next_open_us(t) == t

    def next_open_at(self, at: datetime) -> datetime:
        """``at`` itself when open, else the next opening."""
        return from_us(self.next_open_us(to_us(at)))

    def is_business_day(self, day: date) -> bool:
        """Whether ``day`` has open hours and is not a holiday or closed date."""
        return self._year(day.year).business[day.timetuple().tm_yday - 1]

    # -- integer-microsecond twins, used by the engine's hot path ------------------------------

    def between_us(self, start: int, end: int) -> int:
        if end <= start:
            return 0
        tb = self._covering(start, end)
        return tb.pos(end) - tb.pos(start)

    def add_us(self, start: int, duration: int) -> int:
        if duration == 0:
            return start
        tb = self._table
        if tb is not None and tb.lo <= start < tb.hi:
            # The hot path, ``locate(pos(start) + duration)`` inlined: a covered instant.
            i = bisect_right(tb.starts, start) - 1
            if i >= 0:
                end = tb.ends[i]
                target = tb.cums[i] + (start if start < end else end) - tb.starts[i] + duration
            else:
                target = duration
            if target <= tb.total:
                j = bisect_left(tb.cum_ends, target)
                return tb.starts[j] + target - tb.cums[j]
        else:
            tb = self._covering(start, start)
        while True:
            target = tb.pos(start) + duration
            if target <= tb.total:
                return tb.locate(target)
            tb = self._grow_forward(tb, target - tb.total)

    def subtract_us(self, end: int, duration: int) -> int:
        if duration == 0:
            return end
        tb = self._table
        if tb is None or not tb.lo <= end < tb.hi:
            tb = self._covering(end, end)
        while True:
            target = tb.pos(end) - duration
            if target > 0:
                return tb.locate(target)
            tb = self._grow_backward(tb, 1 - target)

    def advance_us(self, start: int, days: int, time_us: int) -> int:
        t = self._advance_days(start, days) if days else start
        return self.add_us(t, time_us) if time_us else t

    def retreat_us(self, end: int, days: int, time_us: int) -> int:
        t = self.subtract_us(end, time_us) if time_us else end
        return self._retreat_days(t, days) if days else t

    def next_open_us(self, at: int) -> int:
        tb = self._table
        if tb is None or not tb.lo <= at < tb.hi:
            tb = self._covering(at, at)
        while True:
            i = bisect_right(tb.starts, at) - 1
            if i >= 0 and at < tb.ends[i]:
                return at
            if i + 1 < len(tb.starts):
                return tb.starts[i + 1]
            tb = self._grow_forward(tb, 1)

    def business_days_us(self, start: int, end: int) -> int:
        """Business days strictly after the local date of ``start`` up to that of ``end``."""
        tb = self._covering(start, end)
        first = bisect_right(tb.day_starts, start) - 1
        last = bisect_right(tb.day_starts, end) - 1
        return tb.bday_prefix[last + 1] - tb.bday_prefix[first + 1]

    # -- internals -----------------------------------------------------------------------------

    def _advance_days(self, start: int, days: int) -> int:
        # The hot path of every day span: the general version below, inlined for the common case
        # of a covered instant on days without a DST change.
        tb = self._table
        if tb is not None and tb.lo <= start < tb.hi:
            starts = tb.starts
            i = bisect_right(starts, start) - 1
            if i >= 0 and start < tb.ends[i]:
                t = start
            elif i + 1 < len(starts):
                t = starts[i + 1]
            else:
                return self._advance_days_general(start, days)
            day_starts = tb.day_starts
            di = bisect_right(day_starts, t) - 1
            index = tb.bday_prefix[di + 1] - 1 + days
            if index < len(tb.bday_days):
                dj = tb.bday_days[index]
                if not (tb.day_uneven[di] or tb.day_uneven[dj]):
                    moved = day_starts[dj] + t - day_starts[di]
                    k = bisect_right(starts, moved) - 1
                    if k >= 0 and moved < tb.ends[k]:
                        return moved
                    if k + 1 < len(starts):
                        return starts[k + 1]
        return self._advance_days_general(start, days)

    def _advance_days_general(self, start: int, days: int) -> int:
        t = self.next_open_us(start)
        tb = self._covering(t, t)
        while True:
            di = bisect_right(tb.day_starts, t) - 1
            index = tb.bday_prefix[di + 1] - 1 + days
            if index < len(tb.bday_days):
                break
            tb = self._grow_forward(tb, 1, years=1 + days // 200)
        dj = tb.bday_days[index]
        if tb.day_uneven[di] or tb.day_uneven[dj]:
            moved = self._same_clock_time(t, tb.first_ordinal + dj)
        else:
            moved = tb.day_starts[dj] + t - tb.day_starts[di]
        return self.next_open_us(moved)

    def _retreat_days(self, end: int, days: int) -> int:
        t = self._previous_close(end)
        closing = self.next_open_us(t) != t
        tb = self._covering(t, t)
        while True:
            # A closing instant belongs to the day it closes, even when that is midnight.
            di = (bisect_left if closing else bisect_right)(tb.day_starts, t) - 1
            index = tb.bday_prefix[di] - days
            if index >= 0 and di >= 0:
                break
            tb = self._grow_backward(tb, 1, years=1 + days // 200)
        dj = tb.bday_days[index]
        if tb.day_uneven[di] or tb.day_uneven[dj]:
            step = 1 if closing else 0
            moved = self._same_clock_time(t - step, tb.first_ordinal + dj) + step
        else:
            moved = tb.day_starts[dj] + t - tb.day_starts[di]
        return self._previous_close(moved)

    def _previous_close(self, at: int) -> int:
        """``at`` when open, else the end of the open interval before it (same business time)."""
        tb = self._covering(at, at)
        while True:
            i = bisect_right(tb.starts, at) - 1
            if i >= 0:
                return at if at < tb.ends[i] else tb.ends[i]
            tb = self._grow_backward(tb, 1)

    def _same_clock_time(self, at: int, ordinal: int) -> int:
        """The instant on local date ``ordinal`` whose wall clock reads as ``at``'s does."""
        local = from_us(at).astimezone(self._zone)
        tod = (
            (local.hour * 60 + local.minute) * MINUTE_US
            + local.second * 1_000_000
            + local.microsecond
        )
        return self._wall_us(date.fromordinal(ordinal), tod, closing=False)

    def _wall_us(self, day: date, tod_us: int, *, closing: bool) -> int:
        """Wall time ``tod_us`` after local midnight of ``day`` -> UTC us, per the module rules."""
        naive = datetime(day.year, day.month, day.day) + timedelta(microseconds=tod_us)
        first = (naive.replace(tzinfo=self._zone, fold=0) - EPOCH) // ONE_US
        second = (naive.replace(tzinfo=self._zone, fold=1) - EPOCH) // ONE_US
        if first == second:
            return first
        if first < second:  # ambiguous: the clock shows this time twice
            return second if closing else first
        # Inside a gap: fold=0 reads it with the old offset (later), fold=1 with the new one
        # (earlier); the jump itself lies in (second, first]. Find it by bisection.
        after = self._offset(first)
        lo, hi = second, first
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset(mid) == after:
                hi = mid
            else:
                lo = mid
        return hi

    def _offset(self, at: int) -> timedelta | None:
        return from_us(at).astimezone(self._zone).utcoffset()

    def _year(self, year: int) -> _Year:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        if not _FIRST_YEAR <= year <= _LAST_YEAR + 1:
            raise ValueError(f"calendar {self.name!r}: year {year} is out of range")
        closed = set(self._closed)
        if self._country is not None:
            closed.update(
                holidays_lib.country_holidays(
                    self._country, subdiv=self._subdivision, years=year
                ).keys()
            )
        intervals: list[tuple[int, int]] = []
        day_starts: list[int] = []
        business: list[bool] = []
        day = date(year, 1, 1)
        while day.year == year:
            day_starts.append(self._wall_us(day, 0, closing=False))
            windows = self._weekly[day.weekday()]
            is_business = bool(windows) and day not in closed
            business.append(is_business)
            if is_business:
                for start_minute, end_minute in windows:
                    a = self._wall_us(day, start_minute * MINUTE_US, closing=False)
                    b = self._wall_us(day, end_minute * MINUTE_US, closing=True)
                    if b > a:  # a window entirely inside a DST gap has no length
                        intervals.append((a, b))
            day += timedelta(days=1)
        built = _Year(intervals, day_starts, business)
        self._years[year] = built
        return built

    def _build(self, first_year: int, last_year: int) -> _Table:
        first_year = max(first_year, _FIRST_YEAR)
        if last_year > _LAST_YEAR:
            raise ValueError(f"calendar {self.name!r}: year {last_year} is out of range")
        years = {y: self._year(y) for y in range(first_year, last_year + 2)}
        table = _Table(first_year, last_year, years)
        self._table = table
        return table

    def _covering(self, a: int, b: int) -> _Table:
        """A table whose local years cover both instants (a <= b not required)."""
        tb = self._table
        lo, hi = min(a, b), max(a, b)
        if tb is not None and tb.lo <= lo and hi < tb.hi:
            return tb
        first = from_us(lo).year - 1
        last = from_us(hi).year + 1
        if tb is not None:
            first, last = min(first, tb.first_year), max(last, tb.last_year)
        return self._build(first, last)

    def _grow_forward(self, tb: _Table, missing_us: int, years: int = 1) -> _Table:
        yearly = max(self._year(tb.last_year).open_us, 1)
        years = max(years, missing_us // yearly + 1)
        return self._build(tb.first_year, tb.last_year + years)

    def _grow_backward(self, tb: _Table, missing_us: int, years: int = 1) -> _Table:
        if tb.first_year <= _FIRST_YEAR:
            raise ValueError(f"calendar {self.name!r}: no open time before year {_FIRST_YEAR}")
        yearly = max(self._year(tb.first_year).open_us, 1)
        years = max(years, missing_us // yearly + 1)
        return self._build(tb.first_year - years, tb.last_year)


def _duration_us(duration: timedelta) -> int:
    if duration < timedelta(0):
        raise ValueError(f"business time cannot be negative: {duration!r}")
    return duration // ONE_US


def _checked_weekly_hours(
    name: str, weekly_hours: Mapping[int, Sequence[tuple[int, int]]]
) -> tuple[tuple[tuple[int, int], ...], ...]:
    week: list[tuple[tuple[int, int], ...]] = [() for _ in range(7)]
    for weekday, windows in weekly_hours.items():
        if weekday not in range(7):
            raise ValueError(f"calendar {name!r}: weekday {weekday} is not 0 (Monday) .. 6")
        previous_end = -1
        for start, end in windows:
            if not 0 <= start < end <= 1440 or start < previous_end:
                raise ValueError(
                    f"calendar {name!r}: weekday {weekday} hours {list(windows)!r} must be"
                    " sorted, non-overlapping minute windows within 0..1440"
                )
            previous_end = end
        week[weekday] = tuple((int(s), int(e)) for s, e in windows)
    if not any(week):
        raise ValueError(f"calendar {name!r} has no opening hours at all")
    return tuple(week)
