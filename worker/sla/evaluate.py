"""Judging one lead against its policy: rule states, escalations, recycling and the next check.

``evaluate_lead`` judges a lead; the evaluate stage runs it on every changed or due lead. It
works on integer UTC microseconds (the calendar's unit) and turns each policy's spans into
integers once per policy. This is the one source of the rules: nothing else restates them.
``explain_lead`` tells the same story in plain words for
``sla-worker explain``. Both are pure functions of their arguments: they must never read the
clock, log, or touch the database.

Decisions the SLA text leaves open, made here:

* A lead without an owner has no clocks: every rule is NOT_APPLICABLE, nothing escalates.
* ``assigned_at`` None with an owner (the CRM did not say when) falls back to ``created_at``.
* Touches and status changes later than ``now`` do not count yet; the earliest of them is a
  candidate for ``next_check_at`` because the result changes when it arrives.
* Paused business time does not count toward any deadline (first touch, window, gap, minimum open
  time, recycling); a deadline passed before a pause stays breached and keeps escalating.
* Returning a lead to marketing stops every clock not yet run out: such rules become
  NOT_APPLICABLE. EARLY_RETURN then judges the return itself.
* A rule fulfilled after its deadline is MET_LATE (follow-up and time spent too), which ends its
  escalation; the delivery layer sends the "resolved" notice.
* MAX_GAP watches the time between touches from the first touch until the follow-up is met or the
  window ends; a gap whose deadline falls after the window end cannot breach.
* Repeats: every level due repeats on its own interval (the level's ``repeat_every``, else the
  policy's) while the breach lasts; the k-th repeat of level h is due at
  ``advance(due_at(h), BusinessSpan(k * days, k * time))``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import TypeVar

from worker.sla.calendar import EPOCH, MINUTE_US, ONE_US, BusinessCalendar, from_us, to_us
from worker.sla.model import (
    Escalation,
    EscalationPolicy,
    EscalationStep,
    Lead,
    LeadEvaluation,
    Policy,
    Rule,
    RuleResult,
    RuleState,
    TimelineEntry,
    Touch,
    TouchRules,
)
from worker.sla.policies import match_in_words
from worker.sla.spans import BusinessSpan
from worker.sla.statuses import Pause, pauses_in, returned_at, status_timeline
from worker.sla.touches import BEFORE_ASSIGNMENT, touch_ignored_because

PENDING = RuleState.PENDING
WARNING = RuleState.WARNING
BREACHED = RuleState.BREACHED
MET = RuleState.MET
MET_LATE = RuleState.MET_LATE
PAUSED = RuleState.PAUSED
NOT_APPLICABLE = RuleState.NOT_APPLICABLE

_Span = tuple[int, int]  # (business days, open time in microseconds)
_HOUR_US = 3_600_000_000
_DAY_US = 86_400_000_000
# The same local clock time N days later is at least N*24h minus one DST shift away; three hours
# covers every zone's shift, so a gap shorter than this floor needs no calendar lookup.
_DST_MARGIN_US = 3 * _HOUR_US
_CALL_OR_MEETING = frozenset({"call", "meeting"})
_first = itemgetter(0)


def _span(span: BusinessSpan | None) -> _Span | None:
    return None if span is None else (span.days, span.time_us)


class _CompiledPolicy:
    """A policy's spans as integers, computed once per policy object."""

    __slots__ = (
        "first_touch",
        "gap_floor",
        "max_gap",
        "min_open",
        "min_time",
        "not_applicable",
        "pause_statuses",
        "policy",
        "recycle_after",
        "return_statuses",
        "rules",
        "touches",
        "warn",
        "watch_statuses",
        "within",
    )

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.first_touch = _span(policy.first_touch)
        self.warn = _span(policy.warn_before)
        follow_up = policy.follow_up
        self.touches = follow_up.touches if follow_up else 0
        self.within = _span(follow_up.within) if follow_up else None
        self.max_gap = _span(follow_up.max_gap) if follow_up else None
        self.gap_floor = (
            self.max_gap[0] * _DAY_US - _DST_MARGIN_US + self.max_gap[1] if self.max_gap else 0
        )
        self.min_time = None if policy.min_time_spent is None else policy.min_time_spent // ONE_US
        self.min_open = _span(policy.min_open)
        self.recycle_after = _span(policy.recycle_after)
        self.pause_statuses = policy.pause_statuses
        self.return_statuses = policy.return_statuses
        self.watch_statuses = bool(policy.pause_statuses or policy.return_statuses)
        rules: list[Rule] = []
        if self.first_touch is not None:
            rules.append(Rule.FIRST_TOUCH)
        if follow_up is not None:
            rules.append(Rule.FOLLOW_UP)
            if follow_up.max_gap is not None:
                rules.append(Rule.MAX_GAP)
        if self.min_time is not None:
            rules.append(Rule.MIN_TIME_SPENT)
        if self.min_open is not None:
            rules.append(Rule.EARLY_RETURN)
        self.rules = tuple(rules)
        self.not_applicable = tuple(
            RuleResult(rule, NOT_APPLICABLE, None, None, None, None, "no owner") for rule in rules
        )


class _CompiledEscalation:
    __slots__ = ("levels", "policy")

    def __init__(self, policy: EscalationPolicy) -> None:
        self.policy = policy
        self.levels = tuple(
            (
                level.after.days,
                level.after.time_us,
                level.notify,
                _span(level.repeat_every or policy.repeat_every),
            )
            for level in policy.levels
        )


def _compiled_policy(policy: Policy) -> _CompiledPolicy:
    """Policies are frozen values: a handful per config, each compiled once."""
    return _compiled(_COMPILED_POLICIES, policy, _CompiledPolicy)


def _compiled_escalation(policy: EscalationPolicy) -> _CompiledEscalation:
    return _compiled(_COMPILED_ESCALATIONS, policy, _CompiledEscalation)


_P = TypeVar("_P")
_C = TypeVar("_C")
_COMPILED_POLICIES: dict[int, tuple[Policy, _CompiledPolicy]] = {}
_COMPILED_ESCALATIONS: dict[int, tuple[EscalationPolicy, _CompiledEscalation]] = {}
#: Entries kept per cache: far more policies than a config has (a reload brings new ones).
_COMPILED_KEPT = 64


def _compiled(cache: dict[int, tuple[_P, _C]], policy: _P, compile_: Callable[[_P], _C]) -> _C:
    """``compile_(policy)``, once per policy object: looked up by identity, not by value (an
    ``lru_cache`` hashed every field of the policy for each lead judged: 1.5 % of an
    incremental pass). The entry keeps its policy alive, so its id is not reused meanwhile."""
    entry = cache.get(id(policy))
    if entry is not None and entry[0] is policy:
        return entry[1]
    if len(cache) >= _COMPILED_KEPT:
        cache.clear()
    compiled = compile_(policy)
    cache[id(policy)] = (policy, compiled)
    return compiled


def _touches_detail(count: int, needed: int) -> str:
    return f"{count} of {needed} touches"


def _time_detail(spent_us: int, needed_us: int) -> str:
    return f"call+meeting time {spent_us // MINUTE_US}m of {needed_us // MINUTE_US}m"


class _Facts:
    """What the rules need about one lead, in integer microseconds."""

    __slots__ = (
        "calendar",
        "next_data",
        "now",
        "paused_now",
        "pauses",
        "returned",
        "start",
        "times",
        "touches",
    )

    def __init__(
        self,
        lead: Lead,
        touches: Sequence[Touch],
        cp: _CompiledPolicy,
        calendar: BusinessCalendar,
        rules: TouchRules,
        start: int,
        now: int,
    ) -> None:
        self.calendar = calendar
        self.start = start
        self.now = now
        owner = lead.owner_id
        counted: list[tuple[int, Touch]] = []
        next_data = -1
        in_order = True
        previous = start
        for touch in touches:
            at = touch.at
            if at.tzinfo is None:
                raise ValueError(f"naive datetime {at!r} on a touch of lead {lead.id!r}")
            if touch_ignored_because(touch, owner, rules) is not None:
                continue
            t = (at - EPOCH) // ONE_US
            if t < start:
                continue
            if t > now:
                if next_data < 0 or t < next_data:
                    next_data = t
                continue
            if t < previous:
                in_order = False
            previous = t
            counted.append((t, touch))
        if not in_order:
            counted.sort(key=_first)
        self.times = [t for t, _ in counted]
        self.touches = [touch for _, touch in counted]
        self.pauses: list[Pause] = []
        self.paused_now = False
        self.returned: int | None = None
        if cp.watch_statuses:
            changes, later = status_timeline(lead, now, start)
            if later >= 0 and (next_data < 0 or later < next_data):
                next_data = later
            if cp.pause_statuses:
                self.pauses = pauses_in(changes, cp.pause_statuses, start)
                self.paused_now = bool(self.pauses) and self.pauses[-1][1] is None
            if cp.return_statuses:
                self.returned = returned_at(changes, cp.return_statuses)
        self.next_data = next_data

    def clock_pauses(self) -> list[Pause]:
        """Pauses plus the standstill that a return to marketing causes."""
        if self.returned is None:
            return self.pauses
        return [*self.pauses, (max(self.returned, self.start), None)]

    def stopped_state(self) -> RuleState:
        """The state of a rule whose clock stands still now."""
        return NOT_APPLICABLE if self.returned is not None else PAUSED

    def stopped_detail(self) -> str:
        return "returned to marketing" if self.returned is not None else "paused"


def _extended(cal: BusinessCalendar, start: int, at: int, pauses: list[Pause]) -> int | None:
    """``at`` pushed later by the business time the clock stood still between ``start`` and it.

    None when an unfinished pause began before the clock ran out: the deadline is unknown until
    the pause ends.
    """
    needed = -1
    offset = 0
    for pause_start, pause_end in pauses:
        if pause_end is not None and pause_end <= start:
            continue
        pause_start = max(pause_start, start)
        if needed < 0:
            needed = cal.between_us(start, at)
        if cal.between_us(start, pause_start) - offset >= needed:
            break
        if pause_end is None:
            return None
        offset += cal.between_us(pause_start, pause_end)
    return cal.add_us(at, offset) if offset else at


class _Clock:
    """A rule clock from ``start``: its deadline and warning instant, pause-extended.

    ``deadline_at`` and ``warn_at`` are the same instants as datetimes, made once because several
    rules share the follow-up window's clock.
    """

    __slots__ = ("deadline", "deadline_at", "warn", "warn_at")

    def __init__(
        self, f: _Facts, cp: _CompiledPolicy, start: int, span: _Span, pauses: list[Pause]
    ) -> None:
        cal = f.calendar
        plain = cal.advance_us(start, span[0], span[1])
        self.deadline = _extended(cal, start, plain, pauses) if pauses else plain
        warn: int | None = None
        if cp.warn is not None and self.deadline is not None:
            warn = max(cal.retreat_us(plain, cp.warn[0], cp.warn[1]), start)
            if pauses:
                warn = _extended(cal, start, warn, pauses)
        self.warn = warn
        self.deadline_at = _dt(self.deadline)
        self.warn_at = _dt(warn)

    def state(self, f: _Facts, met: int, candidates: list[int]) -> RuleState:
        """The state given the instant the rule was met (-1: not yet)."""
        deadline = self.deadline
        if met >= 0:
            return MET if deadline is None or met <= deadline else MET_LATE
        if deadline is None:
            return f.stopped_state()
        if f.now >= deadline:
            return BREACHED
        candidates.append(deadline)
        warn = self.warn
        if warn is not None:
            if f.now >= warn:
                return WARNING
            candidates.append(warn)
        return PENDING


def _utc(at: datetime) -> datetime:
    """``at`` in UTC: instants passed through from the input must not keep the caller's zone."""
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


_FIRST_TOUCH_DETAILS = {
    PENDING: "no touch yet",
    WARNING: "no touch yet",
    BREACHED: "no touch before the deadline",
    MET: "touched in time",
    MET_LATE: "touched after the deadline",
}


def _first_touch(
    f: _Facts, cp: _CompiledPolicy, started_at: datetime, candidates: list[int]
) -> tuple[RuleResult, int]:
    assert cp.first_touch is not None
    clock = _Clock(f, cp, f.start, cp.first_touch, f.clock_pauses())
    met = f.times[0] if f.times else -1
    state = clock.state(f, met, candidates)
    detail = _FIRST_TOUCH_DETAILS.get(state) or f.stopped_detail()
    result = RuleResult(
        Rule.FIRST_TOUCH,
        state,
        started_at,
        clock.deadline_at,
        clock.warn_at,
        _utc(f.touches[0].at) if met >= 0 else None,
        detail,
    )
    return result, clock.deadline if state is BREACHED and clock.deadline is not None else -1


def _follow_up(
    f: _Facts, cp: _CompiledPolicy, window: _Clock, started_at: datetime, candidates: list[int]
) -> tuple[RuleResult, int]:
    needed = cp.touches
    count = len(f.times)
    met = f.times[needed - 1] if count >= needed else -1
    state = window.state(f, met, candidates)
    detail = _touches_detail(count, needed)
    if state is PAUSED or state is NOT_APPLICABLE:
        detail = f.stopped_detail()
    result = RuleResult(
        Rule.FOLLOW_UP,
        state,
        started_at,
        window.deadline_at,
        window.warn_at,
        _utc(f.touches[needed - 1].at) if met >= 0 else None,
        detail,
    )
    return result, window.deadline if state is BREACHED and window.deadline is not None else -1


def _gap_due(f: _Facts, cp: _CompiledPolicy, pauses: list[Pause], at: int) -> int | None:
    assert cp.max_gap is not None
    plain = f.calendar.advance_us(at, cp.max_gap[0], cp.max_gap[1])
    return _extended(f.calendar, at, plain, pauses) if pauses else plain


def _max_gap(
    f: _Facts, cp: _CompiledPolicy, window: _Clock, candidates: list[int]
) -> tuple[RuleResult, int]:
    times = f.times
    count = len(times)
    needed = cp.touches
    window_end = window.deadline
    pauses = f.clock_pauses()
    now = f.now
    # Gaps already closed by a touch: late if the touch came after the gap's deadline while the
    # window was still running.
    late = False
    for i in range(min(count, needed) - 1):
        if times[i + 1] - times[i] <= cp.gap_floor:
            continue
        due = _gap_due(f, cp, pauses, times[i])
        if due is not None and times[i + 1] > due and (window_end is None or due <= window_end):
            late = True
    started_at = _dt(times[0]) if times else None
    deadline: int | None = None
    warn: int | None = None
    met_at: datetime | None = None
    if count >= needed:
        state = MET_LATE if late else MET
        met_at = _utc(f.touches[needed - 1].at)
        detail = "every gap within the limit" if not late else "a gap ran over the limit"
    elif count == 0:
        if window_end is None:
            state, detail = f.stopped_state(), f.stopped_detail()
        elif now >= window_end:
            state, detail = NOT_APPLICABLE, "no touch in the window"
        else:
            state, detail = PENDING, "waits for the first touch"
            candidates.append(window_end)
    else:
        deadline = _gap_due(f, cp, pauses, times[-1])
        if deadline is None:
            state, detail = f.stopped_state(), f.stopped_detail()
        elif window_end is not None and deadline > window_end:
            # The window ends before this gap can run over: nothing more is due.
            deadline = None
            if now >= window_end:
                state = MET_LATE if late else MET
                detail = "window over, no gap ran over the limit"
            else:
                state, detail = PENDING, "no further touch due before the window ends"
                candidates.append(window_end)
        elif now >= deadline:
            state, detail = BREACHED, "next touch overdue"
        else:
            candidates.append(deadline)
            state, detail = PENDING, "next touch due"
            if cp.warn is not None:
                warn = max(f.calendar.retreat_us(deadline, cp.warn[0], cp.warn[1]), times[-1])
                if now >= warn:
                    state = WARNING
                else:
                    candidates.append(warn)
    result = RuleResult(Rule.MAX_GAP, state, started_at, _dt(deadline), _dt(warn), met_at, detail)
    return result, deadline if state is BREACHED and deadline is not None else -1


def _min_time_spent(
    f: _Facts,
    cp: _CompiledPolicy,
    window: _Clock | None,
    started_at: datetime,
    candidates: list[int],
) -> tuple[RuleResult, int]:
    assert cp.min_time is not None
    needed = cp.min_time
    spent = 0
    met_index = -1 if needed > 0 else 0
    for index, touch in enumerate(f.touches):
        if touch.kind in _CALL_OR_MEETING:
            spent += touch.duration // ONE_US
            if met_index < 0 and spent >= needed:
                met_index = index
    met = -1
    if met_index >= 0:
        met = f.times[met_index] if f.times else f.start
    if window is None:
        # Without a follow-up window there is no deadline to miss.
        state = MET if met >= 0 else PENDING
        deadline = None
        deadline_at = warn_at = None
    else:
        state = window.state(f, met, candidates)
        deadline, deadline_at, warn_at = window.deadline, window.deadline_at, window.warn_at
    detail = _time_detail(spent, needed)
    if state is PAUSED or state is NOT_APPLICABLE:
        detail = f.stopped_detail()
    met_at = _utc(f.touches[met_index].at) if met >= 0 and f.touches else None
    result = RuleResult(
        Rule.MIN_TIME_SPENT, state, started_at, deadline_at, warn_at, met_at, detail
    )
    return result, deadline if state is BREACHED and deadline is not None else -1


def _minimum_open_until(f: _Facts, cp: _CompiledPolicy, window: _Clock | None) -> int | None:
    """When the minimum open time ends; None while a pause holds it up.

    Only pauses extend it: a return to marketing is what the minimum open time judges.
    """
    assert cp.min_open is not None
    if window is not None and f.returned is None and cp.min_open == cp.within:
        # Same span, same pauses: the follow-up window's deadline is this instant already.
        return window.deadline
    cal = f.calendar
    plain = cal.advance_us(f.start, cp.min_open[0], cp.min_open[1])
    return _extended(cal, f.start, plain, f.pauses) if f.pauses else plain


def _early_return(
    f: _Facts, cp: _CompiledPolicy, window: _Clock | None, started_at: datetime
) -> tuple[RuleResult, int]:
    returned = f.returned
    if returned is None:
        return RuleResult(
            Rule.EARLY_RETURN, NOT_APPLICABLE, started_at, None, None, None, "not returned"
        ), -1
    minimum = _minimum_open_until(f, cp, window)
    touched = bisect_right(f.times, returned)
    if minimum is not None and returned < minimum:
        state, detail = BREACHED, "returned before the minimum open time"
    elif cp.touches and touched < cp.touches:
        state, detail = BREACHED, f"returned with {_touches_detail(touched, cp.touches)}"
    else:
        state, detail = MET, "returned after the minimum open time"
    result = RuleResult(
        Rule.EARLY_RETURN, state, started_at, _dt(minimum), None, _dt(returned), detail
    )
    return result, returned if state is BREACHED else -1


def _recycle(
    f: _Facts, cp: _CompiledPolicy, window: _Clock | None, candidates: list[int]
) -> tuple[bool, str | None]:
    """Whether the lead is due to go back to marketing nurturing, and why in words."""
    if cp.recycle_after is None or f.returned is not None or f.paused_now:
        return False, None
    if len(f.times) < cp.touches and not cp.policy.recycle_untouched:
        # Marketing gets a lead back only after sales kept its promise of touches; until then
        # the follow-up breach escalates (a new touch makes the lead judged again).
        return False, None
    cal = f.calendar
    due = f.start
    if cp.min_open is not None:
        minimum = _minimum_open_until(f, cp, window)
        if minimum is None:
            return False, None
        due = max(due, minimum)
    quiet_from = f.start
    if window is not None:
        if window.deadline is None:
            return False, None
        quiet_from = window.deadline
    after_window = True
    if f.times and f.times[-1] > quiet_from:
        quiet_from = f.times[-1]
        after_window = False
    plain = cal.advance_us(quiet_from, cp.recycle_after[0], cp.recycle_after[1])
    quiet_until = _extended(cal, quiet_from, plain, f.pauses) if f.pauses else plain
    if quiet_until is None:
        return False, None
    due = max(due, quiet_until)
    if f.now < due:
        candidates.append(due)
        return False, None
    assert cp.policy.recycle_after is not None
    words = cp.policy.recycle_after.in_words()
    if window is None:
        reason = f"no touch for {words} after the last touch"
        if not f.times:
            reason = f"no touch for {words} after the assignment"
    elif after_window:
        reason = f"no touch for {words} after the follow-up window"
    else:
        reason = f"no touch for {words} after the last touch"
    if cp.touches:
        reason += f"; {_touches_detail(len(f.times), cp.touches)}"
    return True, reason


def _repeats(cal: BusinessCalendar, due: int, span: _Span, now: int) -> tuple[int, int, int]:
    """(whole repeat spans elapsed since ``due``, when the latest of them fell due — ``due``
    itself when none has —, when the next falls due)."""
    days, time = span
    if days == 0:
        repeat = cal.between_us(due, now) // time
        latest = cal.add_us(due, repeat * time) if repeat else due
        return repeat, latest, cal.add_us(due, (repeat + 1) * time)
    # Start from the count of business days, an upper bound, then step down: a step or two. The
    # last repeat found to lie after ``now`` is the next one, so it need not be computed again.
    repeat = cal.business_days_us(due, now) // days
    latest, following = due, -1
    while repeat > 0:
        at = cal.advance_us(due, repeat * days, repeat * time)
        if at <= now:
            latest = at
            break
        following = at
        repeat -= 1
    if following < 0:
        following = cal.advance_us(due, (repeat + 1) * days, (repeat + 1) * time)
    while following <= now:
        repeat += 1
        latest = following
        following = cal.advance_us(due, (repeat + 1) * days, (repeat + 1) * time)
    return repeat, latest, following


def _escalation(
    cal: BusinessCalendar,
    ce: _CompiledEscalation,
    rule: Rule,
    breached_at: int,
    now: int,
    candidates: list[int],
) -> Escalation:
    breached = from_us(breached_at)
    steps: list[EscalationStep] = []
    next_at = -1
    for index, (days, time, notify, repeat_span) in enumerate(ce.levels):
        due = cal.advance_us(breached_at, days, time)
        if due > now:
            if next_at < 0 or due < next_at:
                next_at = due
            continue
        # The first level is usually due at the breach itself: share its datetime.
        due_at = breached if due == breached_at else from_us(due)
        if repeat_span is None or not (repeat_span[0] or repeat_span[1]):
            steps.append(EscalationStep(index, due_at, notify))
            continue
        repeat, latest, following = _repeats(cal, due, repeat_span, now)
        latest_at = None if latest == due else from_us(latest)
        steps.append(EscalationStep(index, due_at, notify, repeat, latest_at))
        if next_at < 0 or following < next_at:
            next_at = following
    if next_at >= 0:
        candidates.append(next_at)
    return Escalation(rule, breached, tuple(steps), None if next_at < 0 else from_us(next_at))


def evaluate_lead(
    lead: Lead,
    touches: Sequence[Touch],
    policy: Policy,
    calendar: BusinessCalendar,
    touch_rules: TouchRules,
    escalation: EscalationPolicy,
    now: datetime,
) -> LeadEvaluation:
    """The SLA state of ``lead`` at ``now`` under ``policy`` (see the module docstring)."""
    now_us = to_us(now)
    cp = _compiled_policy(policy)
    created = to_us(lead.created_at)
    started_at = _utc(lead.assigned_at if lead.assigned_at is not None else lead.created_at)
    start = to_us(started_at) if lead.assigned_at is not None else created
    if lead.owner_id is None:
        return LeadEvaluation(lead.id, policy.name, cp.not_applicable, (), False, None, None)
    f = _Facts(lead, touches, cp, calendar, touch_rules, start, now_us)
    candidates: list[int] = []
    if f.next_data >= 0:
        candidates.append(f.next_data)
    results: list[RuleResult] = []
    breaches: list[tuple[Rule, int]] = []
    window: _Clock | None = None
    if cp.within is not None:
        window = _Clock(f, cp, start, cp.within, f.clock_pauses())
    for rule in cp.rules:
        if rule is Rule.FIRST_TOUCH:
            result, breached = _first_touch(f, cp, started_at, candidates)
        elif rule is Rule.FOLLOW_UP:
            assert window is not None
            result, breached = _follow_up(f, cp, window, started_at, candidates)
        elif rule is Rule.MAX_GAP:
            assert window is not None
            result, breached = _max_gap(f, cp, window, candidates)
        elif rule is Rule.MIN_TIME_SPENT:
            result, breached = _min_time_spent(f, cp, window, started_at, candidates)
        else:
            result, breached = _early_return(f, cp, window, started_at)
        results.append(result)
        if breached >= 0:
            breaches.append((rule, breached))
    escalations: tuple[Escalation, ...] = ()
    if breaches:
        ce = _compiled_escalation(escalation)
        escalations = tuple(
            _escalation(calendar, ce, rule, at, now_us, candidates) for rule, at in breaches
        )
    recycle_due, recycle_reason = _recycle(f, cp, window, candidates)
    next_check: datetime | None = None
    future = [c for c in candidates if c > now_us]
    if future:
        next_check = from_us(min(future))
    return LeadEvaluation(
        lead.id,
        policy.name,
        tuple(results),
        escalations,
        recycle_due,
        recycle_reason,
        next_check,
    )


class _Story:
    """Timeline entries in the order they were said, sorted by instant at the end."""

    def __init__(self, owner_names: Mapping[str, str]) -> None:
        self.names = owner_names
        self.entries: list[tuple[datetime, int, str]] = []

    def say(self, at: datetime, text: str) -> None:
        self.entries.append((at, len(self.entries), text))

    def who(self, owner_id: str | None) -> str:
        if owner_id is None:
            return "unknown"
        name = self.names.get(owner_id)
        return f"{name} ({owner_id})" if name else owner_id

    def timeline(self) -> list[TimelineEntry]:
        ordered = sorted(self.entries, key=lambda entry: (entry[0], entry[1]))
        return [TimelineEntry(at.astimezone(UTC), text) for at, _, text in ordered]


def explain_lead(
    lead: Lead,
    touches: Sequence[Touch],
    policy: Policy,
    calendar: BusinessCalendar,
    touch_rules: TouchRules,
    escalation: EscalationPolicy,
    now: datetime,
    owner_names: Mapping[str, str] | None = None,
) -> list[TimelineEntry]:
    """A plain-words timeline of the lead's SLA, oldest first, for ``sla-worker explain``.

    ``owner_names`` (owner id → name) lets the story say who, not which id."""
    evaluation = evaluate_lead(lead, touches, policy, calendar, touch_rules, escalation, now)
    story = _Story(owner_names or {})
    story.say(lead.created_at, f"lead {lead.id} created")
    started_at = lead.assigned_at or lead.created_at
    if lead.owner_id is None:
        story.say(now, "no owner: no SLA clock runs")
    else:
        assigned = (
            "assigned" if lead.assigned_at else "assignment time unknown; clock from creation"
        )
        story.say(started_at, f"{assigned} to {story.who(lead.owner_id)}; first-touch clock starts")
    story.say(
        started_at,
        f"policy {policy.name} applies (matches {match_in_words(policy.match)});"
        f" calendar {calendar.name} ({calendar.timezone})",
    )
    _tell_touches(story, lead, touches, touch_rules, to_us(started_at), to_us(now))
    _tell_statuses(story, lead, policy, to_us(started_at), to_us(now))
    _tell_rules(story, evaluation, now)
    if evaluation.next_check_at is not None:
        story.say(evaluation.next_check_at, "next check")
    return story.timeline()


def _tell_touches(
    story: _Story,
    lead: Lead,
    touches: Sequence[Touch],
    touch_rules: TouchRules,
    start: int,
    now_us: int,
) -> None:
    """Every activity, and whether it counts as a touch (and if not, why not)."""
    for touch in sorted(touches, key=lambda t: t.at):
        why = touch_ignored_because(touch, lead.owner_id, touch_rules)
        at = to_us(touch.at)
        if why is None and at < start:
            why = BEFORE_ASSIGNMENT
        if why is None and at > now_us:
            why = "in the future"
        what = f"{touch.kind} by {story.who(touch.owner_id)}"
        story.say(
            touch.at, f"{what} counts as a touch" if why is None else f"{what} ignored: {why}"
        )


def _tell_statuses(story: _Story, lead: Lead, policy: Policy, start: int, now_us: int) -> None:
    """Pauses and a return to marketing, from the status history."""
    if not (policy.pause_statuses or policy.return_statuses):
        return
    changes, _ = status_timeline(lead, now_us, start)
    for pause_start, pause_end in pauses_in(changes, policy.pause_statuses, start):
        story.say(from_us(pause_start), "paused: SLA clocks stop")
        if pause_end is not None:
            story.say(from_us(pause_end), "pause ends: SLA clocks run again")
    back = returned_at(changes, policy.return_statuses)
    if back is not None:
        story.say(from_us(back), "returned to marketing")


def _tell_rules(story: _Story, evaluation: LeadEvaluation, now: datetime) -> None:
    """Each rule's warning, deadline and outcome; each breach's escalation steps; recycling."""
    for result in evaluation.rules:
        name = result.rule.value.replace("_", " ")
        met_before_warning = result.met_at is not None and (
            result.warn_at is None or result.met_at <= result.warn_at
        )
        if result.warn_at is not None and not met_before_warning:
            story.say(result.warn_at, f"{name}: warning due")
        if result.deadline_at is not None:
            story.say(result.deadline_at, f"{name}: deadline")
        if result.met_at is not None and result.state in (MET, MET_LATE):
            how = "met" if result.state is MET else "met late"
            story.say(result.met_at, f"{name}: {how} ({result.detail})")
        story.say(now, f"{name}: now {result.state.value.replace('_', ' ')} ({result.detail})")
    for item in evaluation.escalations:
        name = item.rule.value.replace("_", " ")
        story.say(item.breached_at, f"{name}: breached")
        for step in item.steps_due:
            # Levels are numbered from 1 in messages and the README (level 1: at the breach).
            number = step.level + 1
            story.say(
                step.due_at,
                f"{name}: escalation level {number} notifies {', '.join(step.notify)}",
            )
            if step.repeat:
                times = "once" if step.repeat == 1 else f"{step.repeat} times"
                story.say(step.last_due_at, f"{name}: level {number} reminded again {times}")
        if item.next_at is not None:
            story.say(item.next_at, f"{name}: next escalation or repeat")
    if evaluation.recycle_due:
        story.say(now, f"recycle due: {evaluation.recycle_reason}")
