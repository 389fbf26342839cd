"""When a periodic task runs, as admins write it: a duration (``"1d"``, ``"15s"``) or a
five-field cron line in UTC (``"0 7 * * 1-5"``). One parser for both the config check and the
beat schedule, so a line ``check-config`` accepts is a line beat can run."""

from __future__ import annotations

from celery.schedules import crontab

from worker.durations import parse_wall_duration

CRON_HINT = 'a cron line "minute hour day-of-month month day-of-week" in UTC like "0 7 * * 1-5"'


def parse_schedule(text: str) -> float | crontab:
    """``"1d"`` → seconds; ``"0 7 * * 1-5"`` → a crontab; ValueError naming what is wrong."""
    fields = text.split()
    if len(fields) == 5:
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        try:
            return crontab(minute, hour, day_of_week, day_of_month, month_of_year)
        except (ValueError, IndexError, KeyError) as e:
            raise ValueError(f'"{text}" is not {CRON_HINT} ({e})') from None
    try:
        return parse_wall_duration(text).total_seconds()
    except ValueError:
        raise ValueError(f'"{text}" is neither a duration like 1d nor {CRON_HINT}') from None
