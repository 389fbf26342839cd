"""The admin's YAML config (policies, calendars, teams, escalation, schedules), validated once.

Pydantic models check every key and name the exact key path in each error
(``policies[1].first_touch: "4x" is not a duration like 90m, 4h, 2d or 1d4h``). Code below this
layer receives :class:`Agreement` (engine objects), never raw dicts. Nothing here reads the
environment: that is ``worker.settings``.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from worker.durations import parse_duration_parts, parse_wall_duration
from worker.errors import ConfigError
from worker.review_cadence import parse_at
from worker.schedules import parse_schedule
from worker.sla import (
    BusinessCalendar,
    BusinessSpan,
    EscalationLevel,
    EscalationPolicy,
    FollowUp,
    Policy,
    PolicyMatch,
    TouchRules,
)


def _span(value: Any) -> BusinessSpan:
    if isinstance(value, BusinessSpan):
        return value
    days, time = parse_duration_parts(value)
    return BusinessSpan(days=days, time=time)


def _wall(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_wall_duration(value)


#: Business time on the team's calendar: "2d" is two business days, "4h" four open hours.
Span = Annotated[BusinessSpan, BeforeValidator(_span)]
#: Plain elapsed time (schedules, grouping windows).
WallDuration = Annotated[timedelta, BeforeValidator(_wall)]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_schedule(value: str) -> str:
    parse_schedule(value)  # what beat will run: a line it cannot run is refused here
    return value


def _check_channel(value: str) -> str:
    if not value.startswith("#"):
        raise ValueError(f'"{value}" is not a channel like #sales-ops')
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


#: A list that may be written as a single string (``notify: rep``, ``digest: "09:00"``).
OneOrMany = Annotated[list[str], BeforeValidator(_one_or_many)]
#: When a task runs: a duration ("1d") or a five-field cron line in UTC ("0 7 * * 1-5").
Schedule = Annotated[str, AfterValidator(_check_schedule)]
#: A Slack channel by name.
ChannelName = Annotated[str, AfterValidator(_check_channel)]


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'"{value}" is not an IANA time zone like Europe/Berlin') from None
    return value


ZoneName = Annotated[str, AfterValidator(_check_zone)]

TouchKind = Literal["call", "email", "meeting", "note", "task"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimitConfig(_Strict):
    """The portal's request budget, shared by every worker process (through Redis when the
    broker is Redis). HubSpot's usage guidelines: 100 requests per rolling 10 s per app on
    Free/Starter, 190 on Professional/Enterprise."""

    per_10s: PositiveInt = 100
    #: CONFLICT in HubSpot's docs: 5 search requests per second per account (search guide)
    #: or 4 per token (an older changelog); the stricter one by default.
    search_per_s: PositiveInt = 4
    #: Requests per day: 250,000 on Free/Starter, 625,000 on Professional (CONFLICT: a
    #: changelog says 650,000), 1,000,000 on Enterprise; the lowest by default. HubSpot's own
    #: figure (the X-HubSpot-RateLimit-Daily header) is used whenever it sends one.
    per_day: PositiveInt = 250_000
    #: Past this share of the day's requests the worker logs a warning and ``health`` is red
    #: (at 100 % HubSpot refuses every request until midnight in the portal's time zone).
    warn_at_share: float = Field(default=0.8, gt=0, le=1)


#: The CRM clients this version has (``worker/crm/``): a provider without one is a config error.
BUILT_PROVIDERS = ("hubspot",)


class CrmConfig(_Strict):
    provider: str = "hubspot"

    @field_validator("provider")
    @classmethod
    def _built(cls, value: str) -> str:
        if value not in BUILT_PROVIDERS:
            raise ValueError(
                f'"{value}" is not supported yet: this version reads {", ".join(BUILT_PROVIDERS)}'
            )
        return value

    object: str = "contacts"
    priority_property: str = "hs_lead_priority"
    status_property: str = "hs_lead_status"
    source_property: str = "hs_analytics_source"
    score_property: str = "hubspotscore"
    touch_types: list[TouchKind] = Field(
        default_factory=lambda: list[TouchKind](["call", "email", "meeting"]), min_length=1
    )
    outbound_only: bool = True
    min_call: WallDuration = timedelta(0)
    #: Link to a record in the CRM's web app; ``{id}`` is replaced by the lead's id.
    record_url: str | None = None
    #: Re-read this much before the sync cursor: CRM search indexes lag a few moments.
    sync_overlap: WallDuration = timedelta(minutes=5)
    #: Ask the CRM for archived leads on every sync (search never returns them) and stop
    #: tracking them; merged leads stop being tracked regardless.
    track_archived: bool = True
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)

    @field_validator("record_url")
    @classmethod
    def _record_url_has_id(cls, value: str | None) -> str | None:
        if value is not None and "{id}" not in value:
            raise ValueError(f'"{value}" must contain {{id}} where the lead id goes')
        if value is not None and not value.startswith("https://"):
            raise ValueError(f'"{value}" must start with https://')
        return value


class SchedulesConfig(_Strict):
    sync: WallDuration = timedelta(minutes=2)
    evaluate: WallDuration = timedelta(minutes=1)
    deliver: WallDuration = timedelta(seconds=15)
    #: Local times (each team's calendar time zone, business days only) at which managers'
    #: digests go out; escalation levels with ``digest: true`` wait for the next one.
    digest: OneOrMany = Field(default_factory=lambda: ["09:00", "14:00"])

    @field_validator("sync", "evaluate", "deliver")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("digest")
    @classmethod
    def _times_of_day(cls, value: list[str]) -> list[str]:
        problems = []
        for text in value:
            try:
                _time_of_day(text)
            except ValueError as e:
                problems.append(str(e))
        if problems:
            raise ValueError("; ".join(problems))
        return sorted(value, key=_time_of_day)

    def digest_minutes(self) -> list[int]:
        """Digest times as minutes after local midnight, earliest first."""
        return [_time_of_day(t) for t in self.digest]


def _time_of_day(text: str) -> int:
    match = re.match(r"^\s*(\d{1,2}):(\d{2})\s*$", str(text))
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f'"{text}" is not a time of day like 09:00')
    return int(match.group(1)) * 60 + int(match.group(2))


def _parse_day_key(key: str) -> list[int]:
    """``"mon-fri"`` → [0..4]; ``"sat"`` → [5]; ``"mon,wed"`` → [0, 2]."""
    days: list[int] = []
    for part in key.lower().replace(" ", "").split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            if first not in _DAYS or last not in _DAYS:
                raise ValueError(f'"{key}" is not a day range like mon-fri')
            start, end = _DAYS.index(first), _DAYS.index(last)
            if end < start:
                raise ValueError(f'"{key}" runs backwards; write it like mon-fri')
            days.extend(range(start, end + 1))
        elif part in _DAYS:
            days.append(_DAYS.index(part))
        else:
            raise ValueError(f'"{key}" is not a day like mon, a range like mon-fri, or a list')
    return days


def _parse_ranges(text: str) -> list[tuple[int, int]]:
    """``"09:00-12:30, 13:30-17:30"`` → minutes from local midnight; ``"closed"`` → []."""
    if text.strip().lower() == "closed":
        return []
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        match = _HOURS_RANGE.match(part)
        if not match:
            raise ValueError(f'"{part.strip()}" is not a range like 09:00-17:30')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440:
            raise ValueError(f'"{part.strip()}" is not a time of day (00:00 to 24:00)')
        if end <= start:
            raise ValueError(f'"{part.strip()}" ends before it starts')
        ranges.append((start, end))
    ranges.sort()
    for (_, end), (start, _) in itertools.pairwise(ranges):
        if start < end:
            raise ValueError(f'"{text}" has overlapping ranges')
    return ranges


class CalendarConfig(_Strict):
    timezone: ZoneName
    #: Weekday keys (mon-fri, sat, mon,wed) → "09:00-12:30, 13:30-17:30" or "closed".
    hours: dict[str, str] = Field(min_length=1)
    #: Public holidays from the ``holidays`` package: a country, optionally -subdivision.
    holidays: str | None = None
    #: Extra days the team does not work (company holidays), as YYYY-MM-DD.
    closed: list[date] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[int] = set()
        for key, ranges in value.items():
            days = _parse_day_key(key)
            if not isinstance(ranges, str):
                raise ValueError(f'{key}: write the hours as a string like "09:00-17:00"')
            try:
                _parse_ranges(ranges)
            except ValueError as e:
                raise ValueError(f"{key}: {e}") from None
            twice = seen.intersection(days)
            if twice:
                raise ValueError(f"{key}: {_DAYS[min(twice)]} is given twice")
            seen.update(days)
        if not any(_parse_ranges(ranges) for ranges in value.values()):
            # No business time at all: no deadline could ever fall due.
            raise ValueError("no opening hours at all: open at least one range on one day")
        return value

    @field_validator("holidays")
    @classmethod
    def _known_holidays(cls, value: str | None) -> str | None:
        if value is None:
            return value
        import holidays as holidays_package

        country, _, subdivision = value.partition("-")
        try:
            holidays_package.country_holidays(country, subdiv=subdivision or None, years=2026)
        except NotImplementedError:
            raise ValueError(
                f'"{value}" is not a country (and subdivision) the holidays package knows, '
                "like DE, DE-BE, US-NY"
            ) from None
        return value

    def to_engine(self, name: str, timezone: str) -> BusinessCalendar:
        """This calendar for the engine, with its hours read in ``timezone``."""
        country, _, subdivision = (self.holidays or "").partition("-")
        return BusinessCalendar(
            name=name,
            timezone=timezone,
            weekly_hours=self.weekly_hours(),
            holidays_country=country or None,
            holidays_subdivision=subdivision or None,
            closed_dates=self.closed,
        )

    def weekly_hours(self) -> dict[int, list[tuple[int, int]]]:
        result: dict[int, list[tuple[int, int]]] = {day: [] for day in range(7)}
        for key, ranges in self.hours.items():
            for day in _parse_day_key(key):
                result[day] = _parse_ranges(ranges)
        return result


class TeamConfig(_Strict):
    calendar: str
    manager: str | None = None
    #: Where escalations for this team go when a level says ``channel``.
    channel: str | None = None
    #: Which CRM owners belong here: e-mail addresses, ``team:<CRM team name>``, or ``*``.
    owners: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    #: Who gets the reminders of a rep who is away (``away``); unset: the manager.
    cover: str | None = None

    @field_validator("manager", "cover")
    @classmethod
    def _manager_email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f'"{value}" is not an e-mail address')
        return value

    @field_validator("channel")
    @classmethod
    def _channel_name(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("#") or value[:1] in ("C", "G")):
            raise ValueError(f'"{value}" is not a channel like #sales-emea (or a C… id)')
        return value

    def has_owner(self, email: str | None, crm_teams: Sequence[str]) -> bool:
        for entry in self.owners:
            if entry == "*":
                return True
            if entry.startswith("team:") and entry[5:] in crm_teams:
                return True
            if email and entry.lower() == email.lower():
                return True
        return False


def _score_range(text: str) -> tuple[float | None, float | None]:
    """``">=80"`` → (80, None); ``"<=49"`` → (None, 49); ``"50-79"`` → (50, 79)."""
    text = text.strip()
    try:
        if text.startswith(">="):
            return float(text[2:]), None
        if text.startswith("<="):
            return None, float(text[2:])
        low, sep, high = text.partition("-")
        if sep:
            return float(low), float(high)
        value = float(text)
        return value, value
    except ValueError:
        raise ValueError(f'"{text}" is not a score range like >=80, <=49 or 50-79') from None


class MatchConfig(_Strict):
    priority: list[str] | None = None
    source: list[str] | None = None
    lifecycle_stage: list[str] | None = None
    score: str | None = None

    @field_validator("score")
    @classmethod
    def _valid_score(cls, value: str | None) -> str | None:
        if value is not None:
            _score_range(str(value))
        return value

    def to_engine(self) -> PolicyMatch:
        low, high = _score_range(self.score) if self.score is not None else (None, None)

        def opt(values: list[str] | None) -> frozenset[str] | None:
            return frozenset(values) if values is not None else None

        return PolicyMatch(
            priorities=opt(self.priority),
            sources=opt(self.source),
            lifecycle_stages=opt(self.lifecycle_stage),
            score_min=low,
            score_max=high,
        )


def _not_zero(value: BusinessSpan | None) -> BusinessSpan | None:
    if value is not None and value.is_zero:
        raise ValueError("must be longer than 0 (leave the key out to have no such rule)")
    return value


def _not_shorter(a: BusinessSpan, b: BusinessSpan) -> bool:
    """``a`` is at least as long as ``b`` on any calendar (days and open time both ≥)."""
    return a.days >= b.days and a.time >= b.time


class FollowUpConfig(_Strict):
    touches: PositiveInt
    within: Span
    max_gap: Span | None = None

    @field_validator("within", "max_gap")
    @classmethod
    def _longer_than_zero(cls, value: BusinessSpan | None) -> BusinessSpan | None:
        return _not_zero(value)


class PolicyConfig(_Strict):
    name: str = Field(min_length=1)
    match: MatchConfig | None = None
    first_touch: Span | None = None
    warn_before: Span | None = None
    follow_up: FollowUpConfig | None = None
    min_time_spent: WallDuration | None = None
    min_open: Span | None = None
    recycle_after: Span | None = None
    pause_statuses: list[str] = Field(default_factory=list)
    return_statuses: list[str] = Field(default_factory=list)
    #: Recycle stale leads that never got the follow-up's touches too (default: they stay
    #: with the rep and their follow-up breach escalates).
    recycle_untouched: bool = False
    #: A lead given to another owner (a *Reassign* from Slack, or in the CRM) starts its clocks
    #: again at the new assignment; False: they keep running from the first assignment the
    #: worker saw (``leads.first_assigned_at``).
    reassign_restarts_first_touch: bool = True

    @field_validator("first_touch", "warn_before", "min_open", "recycle_after")
    @classmethod
    def _longer_than_zero(cls, value: BusinessSpan | None) -> BusinessSpan | None:
        return _not_zero(value)

    @model_validator(mode="after")
    def _warning_before_its_deadline(self) -> PolicyConfig:
        warn, deadline = self.warn_before, self.first_touch
        if warn is not None and deadline is not None and _not_shorter(warn, deadline):
            raise ValueError(
                f"warn_before ({warn.in_words()}) must be shorter than first_touch "
                f"({deadline.in_words()}): the warning would come before the clock starts"
            )
        return self

    def to_engine(self) -> Policy:
        follow_up = (
            FollowUp(self.follow_up.touches, self.follow_up.within, self.follow_up.max_gap)
            if self.follow_up
            else None
        )
        return Policy(
            name=self.name,
            match=self.match.to_engine() if self.match else PolicyMatch(),
            first_touch=self.first_touch,
            warn_before=self.warn_before,
            follow_up=follow_up,
            min_time_spent=self.min_time_spent,
            min_open=self.min_open,
            recycle_after=self.recycle_after,
            pause_statuses=frozenset(self.pause_statuses),
            return_statuses=frozenset(self.return_statuses),
            recycle_untouched=self.recycle_untouched,
        )


def _recipient(value: str) -> str:
    if value in ("rep", "manager"):
        return value
    if value.startswith("channel:#") and len(value) > 9:
        return value
    if value == "channel":
        return value  # the team's own escalation channel
    if _EMAIL.match(value):
        return value
    raise ValueError(
        f'"{value}" is not a recipient: use rep, manager, channel (the team\'s), '
        "channel:#name or an e-mail address"
    )


class EscalationLevelConfig(_Strict):
    after: Span
    notify: OneOrMany = Field(min_length=1)
    #: Collect this level's notices into each recipient's next digest (schedules.digest)
    #: instead of sending them at once: managers get one summary, not a message per lead.
    digest: bool = False
    #: Send even outside the recipient's working hours (quiet hours do not apply).
    send_outside_hours: bool = False
    #: Remind this level's recipients again this often while the breach lasts (business
    #: time); unset: ``notifications.repeat_every``.
    repeat_every: Span | None = None

    @field_validator("notify")
    @classmethod
    def _valid_recipients(cls, value: list[str]) -> list[str]:
        return [_recipient(v) for v in value]


class NotificationsConfig(_Strict):
    #: Re-send a still-open breach this often (business time); unset: announce once.
    repeat_every: Span | None = None
    #: Tell the people who were paged when the lead is finally touched.
    send_resolved: bool = True
    #: Notifications for one recipient falling due within this window go out as one message.
    group_wait: WallDuration = timedelta(seconds=30)
    #: Hold messages to a person until their working hours (their Slack time zone, else the
    #: team calendar's); a level with ``send_outside_hours: true`` is exempt.
    quiet_hours: bool = True
    #: Where notices go when their channel is missing, archived or the bot is not in it.
    fallback_channel: ChannelName | None = None
    #: How long a sent (or failed, rerouted, superseded) notice is kept in the outbox. A notice
    #: about a rule still in warning or breached is kept however old: it keeps the reminder
    #: from going out twice.
    keep_sent_for: WallDuration = timedelta(days=90)
    #: How long a Slack user lookup by e-mail is trusted before it is asked again.
    user_cache_for: WallDuration = timedelta(hours=24)


class RecycleConfig(_Strict):
    """Handing stale leads back to marketing nurturing (the engine says when one is due)."""

    #: CRM properties to write on a recycled lead ("" clears one).
    set: dict[str, str] = Field(
        default_factory=lambda: {"lifecyclestage": "lead", "hs_lead_status": "RECYCLED"}
    )
    #: Take the lead away from its owner (the owner property is cleared).
    clear_owner: bool = True
    #: A CRM property that receives the plain-words reason, if your portal has one.
    reason_property: str | None = None
    #: Safety brake: at most this many leads per run; the rest wait for the next run.
    max_per_run: PositiveInt = 200
    #: Leads in these lifecycle stages are never recycled (an open deal makes a contact an
    #: opportunity in HubSpot).
    skip_lifecycle_stages: list[str] = Field(
        default_factory=lambda: ["opportunity", "customer", "evangelist"]
    )
    #: Marketing's channel: one notice per run listing what was recycled and why.
    notify_channel: ChannelName | None = None
    #: When the recycle task runs: a duration ("1d") or a cron line in UTC ("0 7 * * 1-5").
    schedule: Schedule = "0 7 * * 1-5"
    #: ``required``: a run writes nothing back; it asks ``approval_channel`` to approve or
    #: keep each due lead, and the next run writes back the approved ones.
    approval: Literal["none", "required"] = "none"
    #: How long a request waits for a click (wall time); then ``approval_default`` applies.
    approval_timeout: WallDuration = timedelta(days=1)
    #: What an unanswered lead gets after ``approval_timeout``.
    approval_default: Literal["approve", "keep"] = "keep"
    #: Where the approval request goes (unset: ``notify_channel``).
    approval_channel: ChannelName | None = None

    @field_validator("approval_timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"{value} is not a duration above zero, like 4h or 1d")
        return value

    @model_validator(mode="after")
    def _approval_has_a_channel(self) -> RecycleConfig:
        if self.approval == "required" and self.approval_target is None:
            raise ValueError(
                "recycle.approval_channel: recycle.approval is required, so the request needs "
                "a channel: set recycle.approval_channel (or recycle.notify_channel)"
            )
        return self

    @property
    def approval_target(self) -> str | None:
        """The channel the approval request goes to."""
        return self.approval_channel or self.notify_channel


class MarketingConfig(_Strict):
    """Marketing's side of the agreement: quota, complete leads, feedback."""

    #: Qualified leads marketing promises to hand to sales each calendar month.
    monthly_quota: PositiveInt
    #: Optional quotas per team (keys are team names); each team's pace is reported too.
    team_quotas: dict[str, PositiveInt] = Field(default_factory=dict)
    #: Optional quotas per lead source, as the CRM spells it (HubSpot: hs_analytics_source,
    #: e.g. ORGANIC_SEARCH, PAID_SOCIAL); matched without regard to case.
    source_quotas: dict[str, PositiveInt] = Field(default_factory=dict)
    #: CRM properties a lead must have when handed over; a lead missing any is incomplete.
    required_fields: list[str] = Field(
        default_factory=lambda: ["firstname", "lastname", "company", "phone", "email"]
    )
    #: Sales' feedback: the CRM property with the reason a rep gave when returning a lead
    #: (unset: the lead status), counted per source and, if set, per campaign property.
    reason_property: str | None = None
    campaign_property: str | None = None
    #: ``run``: an incomplete lead's clocks run anyway; ``wait``: they start when it is
    #: complete (and it is not judged before).
    incomplete_clock: Literal["run", "wait"] = "run"
    #: The lifecycle stage at which marketing hands a lead over (e.g. marketingqualifiedlead):
    #: a period's deliveries are the leads that entered it in the period, read from the CRM's
    #: date of entering it (HubSpot: ``hs_lifecyclestage_<stage>_date``, "Became a … Date"), or
    #: from ``qualified_date_property`` for a custom stage. Unset: leads created in the period.
    qualified_stage: str | None = Field(default=None, min_length=1)
    qualified_date_property: str | None = Field(default=None, min_length=1)

    @property
    def qualified_date(self) -> str | None:
        """The CRM property holding when a lead was qualified (None: count creation)."""
        if self.qualified_date_property:
            return self.qualified_date_property
        if self.qualified_stage:
            return f"hs_lifecyclestage_{self.qualified_stage}_date"
        return None

    #: Where the daily marketing report goes (quota pace, incomplete leads, feedback).
    channel: ChannelName | None = None
    #: Warn when the month's projected deliveries fall below this share of the quota.
    pace_alert_below: float = Field(default=0.9, gt=0, le=1)
    #: When the report goes out: a cron line in UTC or a duration.
    schedule: Schedule = "0 8 * * 1-5"


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f'"{value}" is not an e-mail address')
    return value


class SlackConfig(_Strict):
    """What people may do from Slack (``/sla``, ``sla-worker web``)."""

    #: Slack users (by the e-mail of their Slack profile) who may act on any lead, besides the
    #: lead's owner and the manager of the owner's team.
    admins: list[Annotated[str, AfterValidator(_email)]] = Field(default_factory=list)
    #: The longest a rep reminder's *Snooze* may hold the rep's reminders back (wall time);
    #: a snooze ends at the time chosen or this long after the click, whichever is first.
    max_snooze: WallDuration = timedelta(days=1)

    @field_validator("max_snooze")
    @classmethod
    def _positive_snooze(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"{value} is not a duration above zero, like 4h or 1d")
        return value


def _aware(value: Any) -> Any:
    """A ``from``/``until`` of ``away.reps``: a date (``2026-12-24``: that day's start in the
    rep's team calendar's time zone) or a time with its zone (``2026-12-24T13:00+01:00``)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f'"{text}" is not a date like 2026-12-24 or a time like 2026-12-24T13:00+01:00'
            ) from None
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no time zone: write a date or a time with one")
    return value


class AwayRepConfig(_Strict):
    """One planned absence: from ``from`` (a date: that day's start) until ``until`` (a date:
    the start of the day the rep is back)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    email: Annotated[str, AfterValidator(_email)]
    from_: Annotated[date | datetime, BeforeValidator(_aware)] = Field(alias="from")
    until: Annotated[date | datetime, BeforeValidator(_aware)]

    @model_validator(mode="after")
    def _until_after_from(self) -> AwayRepConfig:
        def key(value: date | datetime) -> tuple[date, bool]:
            return (value.date(), True) if isinstance(value, datetime) else (value, False)

        if key(self.until) <= key(self.from_) and type(self.until) is type(self.from_):
            raise ValueError(f"until ({self.until}) must be after from ({self.from_})")
        return self


class AwayConfig(_Strict):
    """Reps who are away (``/sla away``, their Slack status, this list): their reminders go to
    the team's ``cover`` (else the manager) and the manager is warned before their leads
    breach."""

    #: A Slack status whose emoji is one of these, or whose text contains one (case ignored),
    #: means away until the status expires.
    markers: list[str] = Field(
        default_factory=lambda: [":palm_tree:", ":airplane:", "OOO", "out of office", "vacation"]
    )
    #: How long a Slack status read is trusted before it is read again (``users.info``).
    status_cache_for: WallDuration = timedelta(minutes=30)
    #: Planned absences, besides ``/sla away`` and Slack statuses.
    reps: list[AwayRepConfig] = Field(default_factory=list)


class ReviewThenConfig(_Strict):
    #: How long after the first review the cadence changes (e.g. 8w).
    after: WallDuration
    every: Literal["1w", "2w", "1mo"]


class ReviewConfig(_Strict):
    """The review meeting's post: the period's report, chart and CSV, to ``channel``."""

    channel: ChannelName
    #: ``1w``: the week before each slot; ``2w``: the two weeks before every other slot;
    #: ``1mo``: the month before, on the first such weekday of each month.
    every: Literal["1w", "2w", "1mo"] = "1w"
    #: A later cadence, once the first review is ``after`` old (weekly, then monthly).
    then: ReviewThenConfig | None = None
    #: The weekday and time of a slot, in ``timezone``.
    at: str = "Mon 09:00"
    #: Default: the time zone of the first team's calendar.
    timezone: ZoneName | None = None

    @field_validator("at")
    @classmethod
    def _weekday_and_time(cls, value: str) -> str:
        parse_at(value)
        return value


def _default_escalation() -> list[EscalationLevelConfig]:
    return [EscalationLevelConfig(after=BusinessSpan(), notify=["rep"])]


class SlaConfig(_Strict):
    """The whole file. Order of ``policies`` matters: first match wins."""

    crm: CrmConfig = Field(default_factory=CrmConfig)
    schedules: SchedulesConfig = Field(default_factory=SchedulesConfig)
    calendars: dict[str, CalendarConfig] = Field(min_length=1)
    teams: dict[str, TeamConfig] = Field(min_length=1)
    policies: list[PolicyConfig] = Field(min_length=1)
    escalation: list[EscalationLevelConfig] = Field(
        default_factory=_default_escalation, min_length=1
    )
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    #: Absent: nothing is ever recycled.
    recycle: RecycleConfig | None = None
    #: Absent: no marketing report, every lead counts as complete.
    marketing: MarketingConfig | None = None
    slack: SlackConfig = Field(default_factory=SlackConfig)
    away: AwayConfig = Field(default_factory=AwayConfig)
    #: Absent: no review post (``sla-worker report --period`` still works).
    review: ReviewConfig | None = None

    # Each check of references between sections is a validator of the later section, fed the
    # earlier ones that validated (``info.data``): so a file with a typo in one section still
    # gets every reference problem of the others reported in the same run.
    @field_validator("teams")
    @classmethod
    def _teams_use_known_calendars(
        cls, teams: dict[str, TeamConfig], info: ValidationInfo
    ) -> dict[str, TeamConfig]:
        calendars = info.data.get("calendars")
        if calendars is None:
            return teams  # the calendars have errors of their own
        problems = [
            f'teams.{name}.calendar: "{team.calendar}" is not a calendar '
            f"(known: {', '.join(sorted(calendars))})"
            for name, team in teams.items()
            if team.calendar not in calendars
        ]
        _raise(problems)
        return teams

    @field_validator("policies")
    @classmethod
    def _policies_are_named_once_and_end_with_a_catch_all(
        cls, policies: list[PolicyConfig]
    ) -> list[PolicyConfig]:
        problems = []
        names = [p.name for p in policies]
        for index, name in enumerate(names):
            if names.index(name) != index:
                problems.append(f'policies[{index}].name: "{name}" is used twice')
        last = policies[-1]
        if last.match is not None and last.match.model_dump(exclude_none=True):
            problems.append(
                f"policies[{len(policies) - 1}].match: the last policy must match every "
                "lead (leave out match) so that no lead goes unjudged"
            )
        _raise(problems)
        return policies

    @field_validator("escalation")
    @classmethod
    def _levels_in_order_to_people_the_teams_have(
        cls, escalation: list[EscalationLevelConfig], info: ValidationInfo
    ) -> list[EscalationLevelConfig]:
        problems = []
        for index in range(1, len(escalation)):
            before, after = escalation[index - 1].after, escalation[index].after
            if before != after and _not_shorter(before, after):
                problems.append(
                    f"escalation[{index}].after: {after.in_words()} falls due before "
                    f"escalation[{index - 1}] ({before.in_words()}); list the levels in the "
                    "order they fall due"
                )
        teams: dict[str, TeamConfig] = info.data.get("teams") or {}
        for index, level in enumerate(escalation):
            for recipient, attribute in (("manager", "manager"), ("channel", "channel")):
                missing = [n for n, t in teams.items() if getattr(t, attribute) is None]
                if recipient in level.notify and missing:
                    problems.append(
                        f"escalation[{index}].notify: {recipient}, but teams "
                        f"{', '.join(missing)} have no {attribute}"
                    )
        _raise(problems)
        return escalation

    @field_validator("marketing")
    @classmethod
    def _quotas_for_known_teams(
        cls, marketing: MarketingConfig | None, info: ValidationInfo
    ) -> MarketingConfig | None:
        teams = info.data.get("teams")
        if marketing is None or teams is None:
            return marketing
        _raise(
            [
                f'marketing.team_quotas: "{team}" is not a team (known: {", ".join(sorted(teams))})'
                for team in marketing.team_quotas
                if team not in teams
            ]
        )
        return marketing


def _raise(problems: list[str]) -> None:
    """Problems whose lines name their own key paths (shown as they are)."""
    if problems:
        raise ValueError("\n".join(problems))


@dataclass(frozen=True)
class Team:
    name: str
    calendar: BusinessCalendar
    manager: str | None
    channel: str | None
    #: Who gets an away rep's reminders (``teams.<name>.cover``); None: the manager.
    cover: str | None = None


#: Left out of the agreement's fingerprint, since they change no verdict: who may act from
#: Slack (``slack``), who is away or covers (``away``, ``teams.*.cover``), the review post
#: (``review``), what counts as delivered in a period's report (``marketing.qualified_*``) and
#: whether recycling asks first (``recycle.approval*``).
_NOT_IN_VERDICTS: Any = {
    "slack": True,
    "away": True,
    "review": True,
    "teams": {"__all__": {"cover"}},
    "marketing": {"qualified_stage", "qualified_date_property"},
    "recycle": {"approval", "approval_timeout", "approval_default", "approval_channel"},
}


class Agreement:
    """The agreement the worker enforces: the validated config turned into engine objects
    (policies, calendars, teams, escalation), built once per process. Not to be confused with
    a ``Rule`` of the engine (first touch, follow-up, …), one clause of a policy."""

    def __init__(self, config: SlaConfig) -> None:
        self.config = config
        #: Changes whenever anything in the validated config that findings and notices depend
        #: on does (not its comments or layout): a new fingerprint has every open lead judged
        #: again. What changes no verdict is left out (``_NOT_IN_VERDICTS``), and so is every
        #: value left at its default, so that a key added in a later version (at a default that
        #: keeps today's behaviour) does not have every store judge all its leads again.
        self.fingerprint = hashlib.sha256(
            config.model_dump_json(exclude=_NOT_IN_VERDICTS, exclude_defaults=True).encode()
        ).hexdigest()
        self.calendars = {
            name: cal.to_engine(name, cal.timezone) for name, cal in config.calendars.items()
        }
        self._zoned: dict[tuple[str, str], BusinessCalendar] = {}
        self._team_of: dict[tuple[str | None, tuple[str, ...]], Team] = {}
        self.teams = {
            name: Team(name, self.calendars[t.calendar], t.manager, t.channel, t.cover)
            for name, t in config.teams.items()
        }
        self.policies = tuple(p.to_engine() for p in config.policies)
        crm = config.crm
        self.touch_rules = TouchRules(
            kinds=frozenset(crm.touch_types),
            outbound_only=crm.outbound_only,
            min_call=crm.min_call,
        )
        self.escalation = EscalationPolicy(
            levels=tuple(
                EscalationLevel(lvl.after, tuple(lvl.notify), lvl.repeat_every)
                for lvl in config.escalation
            ),
            repeat_every=config.notifications.repeat_every,
            send_resolved=config.notifications.send_resolved,
        )

    def watches_statuses(self) -> bool:
        """Whether any policy judges the lead status (pauses, returns to marketing)."""
        return any(p.pause_statuses or p.return_statuses for p in self.policies)

    def calendar_in_zone(self, team: str, timezone: str) -> BusinessCalendar:
        """The team's working hours and holidays read in another time zone: the hours of a
        team member whose Slack profile says they work from elsewhere (cached)."""
        key = (team, timezone)
        calendar = self._zoned.get(key)
        if calendar is None:
            name = self.config.teams[team].calendar
            calendar = self.config.calendars[name].to_engine(f"{name}@{timezone}", timezone)
            self._zoned[key] = calendar
        return calendar

    def extra_crm_properties(self) -> tuple[str, ...]:
        """CRM properties the config reads or writes beyond the standard lead fields: the
        required fields (completeness), and everything recycle writes (its before-values
        are kept for undo, so they must be read)."""
        names: list[str] = []
        marketing = self.config.marketing
        if marketing is not None:
            names += marketing.required_fields
            names += [
                p
                for p in (
                    marketing.reason_property,
                    marketing.campaign_property,
                    marketing.qualified_date,
                )
                if p
            ]
        if self.config.recycle is not None:
            names += list(self.config.recycle.set)
            if self.config.recycle.reason_property:
                names.append(self.config.recycle.reason_property)
        return tuple(dict.fromkeys(names))

    def team_for(self, email: str | None, crm_teams: Sequence[str]) -> Team:
        """The first team whose ``owners`` match; the first team when none does. Remembered
        per owner (e-mail and CRM teams): a pass asks for each lead it judges."""
        key = (email, tuple(crm_teams))
        found = self._team_of.get(key)
        if found is None:
            found = self._team_of[key] = self._first_team_of(email, crm_teams)
        return found

    def _first_team_of(self, email: str | None, crm_teams: Sequence[str]) -> Team:
        for name, team in self.config.teams.items():
            if team.has_owner(email, crm_teams):
                return self.teams[name]
        return next(iter(self.teams.values()))

    @cached_property
    def default_team(self) -> Team:
        return next(iter(self.teams.values()))


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class whose field list applies at ``loc`` (for did-you-mean suggestions)."""
    model: Any = SlaConfig
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        fields = getattr(model, "model_fields", {})
        field = fields.get(part)
        if field is None:
            continue
        annotation = field.annotation
        model = _unwrap_model(annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per problem, each starting with the key path."""
    lines: list[str] = []
    for item in error.errors():
        loc = item["loc"]
        path = _path(loc)
        kind = item["type"]
        message = item["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1])
            key = str(loc[-1])
            hint = ""
            if parent is not None:
                close = difflib.get_close_matches(key, list(parent.model_fields), n=1)
                if close:
                    hint = f' (did you mean "{close[0]}"?)'
            lines.append(f"{path}: unknown key{hint}")
        elif kind == "missing":
            lines.append(f"{path}: required key is missing")
        elif not path or message.startswith((f"{path}.", f"{path}[", f"{path}:")):
            lines.extend(message.splitlines())  # the lines name their own key paths
        else:
            value = item.get("input")
            shown = f' (got "{value}")' if isinstance(value, str | int | float) else ""
            if isinstance(value, str) and f'"{value}"' in message:
                shown = ""
            lines.append(f"{path}: {message}{shown}")
    return lines


def parse_config(data: Any, source: str = "config") -> SlaConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the file must be a YAML mapping of keys, not {data!r:.40}")
    try:
        return SlaConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(format_validation_error(e)), source=source) from None


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, except that dates stay text: ``2026-12-32`` is then reported by
    key path like any other bad value, instead of failing inside the YAML parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_config(path: Path | str) -> SlaConfig:
    """Read and validate the YAML file; ConfigError lists every problem with its key path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader (see _Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    return parse_config(data, str(path))


def load_agreement(path: Path | str) -> Agreement:
    return Agreement(load_config(path))
