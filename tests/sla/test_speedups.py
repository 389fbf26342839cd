"""The compiled engine (worker/sla/_speedups.pyx) against the Python reference: equal results.

Hypothesis draws leads, touches, status histories, policies, escalation ladders, calendars
(DST in both hemispheres, odd offsets, split shifts, weekend hours, closed dates) and instants
(microseconds, other time zones, years outside any table built so far); both engines must return
equal evaluations or raise the same error. The benchmark's realistic mix is checked too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.sla import (
    BusinessCalendar,
    BusinessSpan,
    EscalationLevel,
    EscalationPolicy,
    FollowUp,
    Lead,
    Policy,
    StatusChange,
    Touch,
    TouchRules,
)
from worker.sla import evaluate as engine

ROOT = Path(__file__).resolve().parents[2]
PURE_REQUESTED = bool(os.environ.get("SLA_WORKER_NO_EXTENSIONS"))


def speedups() -> ModuleType:
    """The compiled module; under CI=true its absence is a failure, locally a skip."""
    if PURE_REQUESTED:
        pytest.skip("SLA_WORKER_NO_EXTENSIONS is set: the pure-Python engine was asked for")
    try:
        from worker.sla import _speedups
    except ImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the compiled engine is not built ({e}); run: pip install -e .")
        pytest.skip(f"the compiled engine is not built here ({e})")
    return _speedups


def test_the_compiled_engine_is_in_charge_and_built_from_this_source() -> None:
    module = speedups()
    source = (ROOT / "worker" / "sla" / "_speedups.pyx").read_bytes()
    assert hashlib.sha256(source).hexdigest() == module.SOURCE_SHA, (
        "worker/sla/_speedups.pyx changed since it was compiled: run pip install -e ."
    )
    assert engine.NATIVE and engine.evaluate_lead is module.evaluate_lead


def _calendar(name: str, zone: str, hours: dict[int, list[tuple[int, int]]], **kw: Any) -> Any:
    return BusinessCalendar(name=name, timezone=zone, weekly_hours=hours, **kw)


WEEKDAYS = range(5)
CALENDARS = (
    _calendar(
        "berlin-split",
        "Europe/Berlin",
        {d: [(540, 750), (810, 1050)] for d in WEEKDAYS},
        holidays_country="DE",
        holidays_subdivision="BE",
        closed_dates=[date(2026, 12, 24), date(2026, 12, 31)],
    ),
    _calendar(
        "new-york", "America/New_York", {d: [(540, 1020)] for d in WEEKDAYS}, holidays_country="US"
    ),
    _calendar("sydney", "Australia/Sydney", {d: [(480, 1080)] for d in range(6)}),
    _calendar("kathmandu", "Asia/Kathmandu", {d: [(600, 1140)] for d in range(6)}),
    # Open around the clock at weekends: DST days of 23 and 25 hours, windows ending at 24:00.
    _calendar(
        "london-weekend",
        "Europe/London",
        {0: [(0, 120), (1380, 1440)], 5: [(0, 1440)], 6: [(0, 1440)]},
        holidays_country="GB",
    ),
    BusinessCalendar.always_open(),
)
ZONES = (UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/Los_Angeles"))


def spans(max_days: int = 12) -> st.SearchStrategy[BusinessSpan]:
    return st.builds(
        BusinessSpan,
        days=st.integers(0, max_days),
        time=st.integers(0, 10 * 3600).map(lambda s: timedelta(seconds=s * 7)),
    )


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    within = draw(spans())
    follow_up = draw(
        maybe(
            st.builds(
                FollowUp,
                touches=st.integers(1, 6),
                within=st.just(within),
                max_gap=maybe(spans(3)),
            )
        )
    )
    min_open = draw(st.one_of(st.none(), st.just(within), spans(20)))
    return Policy(
        name=draw(st.sampled_from(["hot", "warm", "default"])),
        first_touch=draw(maybe(spans(3))),
        warn_before=draw(maybe(spans(1))),
        follow_up=follow_up,
        min_time_spent=draw(maybe(st.integers(0, 40).map(lambda m: timedelta(minutes=m)))),
        min_open=min_open,
        recycle_after=draw(maybe(spans(25))),
        pause_statuses=draw(st.sampled_from([frozenset(), frozenset({"BAD_TIMING"})])),
        return_statuses=draw(
            st.sampled_from([frozenset(), frozenset({"UNQUALIFIED", "RECYCLED"})])
        ),
    )


@st.composite
def escalations(draw: st.DrawFn) -> EscalationPolicy:
    levels = tuple(
        EscalationLevel(draw(spans(2)), (who,))
        for who in draw(st.lists(st.sampled_from(["rep", "manager", "channel:#x"]), max_size=3))
    )
    return EscalationPolicy(
        levels=levels,
        repeat_every=draw(maybe(spans(2))),
        send_resolved=draw(st.booleans()),
    )


REPS = ("rep-1", "rep-1", "rep-2", None)


@st.composite
def instants(draw: st.DrawFn, around: datetime) -> datetime:
    offset = timedelta(microseconds=draw(st.integers(-3 * 86_400 * 10**6, 60 * 86_400 * 10**6)))
    if draw(st.integers(0, 9)) == 0:
        # Far away, to years no calendar table has been built for yet.
        seconds = draw(st.integers(-400 * 86_400, 3000 * 86_400))
        offset = timedelta(seconds=seconds, microseconds=draw(st.integers(0, 10**6)))
    return (around + offset).astimezone(draw(st.sampled_from(ZONES)))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, ...]:
    start_year = draw(st.sampled_from([2025, 2026, 2027, 2031]))
    assigned = datetime(start_year, 1, 1, tzinfo=UTC) + timedelta(
        seconds=draw(st.integers(0, 365 * 86_400))
    )
    touches = [
        Touch(
            at=draw(instants(assigned)),
            kind=draw(st.sampled_from(["call", "email", "meeting", "note", "task"])),
            owner_id=draw(st.sampled_from(REPS)),
            duration=timedelta(seconds=draw(st.integers(0, 1800))),
            direction=draw(st.sampled_from([None, "outbound", "inbound"])),
            status=draw(st.sampled_from([None, "SENT", "BOUNCED", "COMPLETED", "SCHEDULED"])),
        )
        for _ in range(draw(st.integers(0, 9)))
    ]
    history = tuple(
        StatusChange(
            draw(instants(assigned)),
            draw(st.sampled_from([None, "WORKING", "BAD_TIMING", "UNQUALIFIED", "RECYCLED"])),
        )
        for _ in range(draw(st.integers(0, 4)))
    )
    lead = Lead(
        id="L1",
        created_at=assigned - timedelta(hours=draw(st.integers(0, 48))),
        owner_id=draw(st.sampled_from(REPS)),
        assigned_at=draw(st.sampled_from([assigned, None])),
        status=draw(st.sampled_from([None, "WORKING", "BAD_TIMING", "UNQUALIFIED"])),
        status_history=history,
    )
    rules = TouchRules(
        outbound_only=draw(st.booleans()),
        min_call=timedelta(seconds=draw(st.sampled_from([0, 60, 120]))),
    )
    return (
        lead,
        touches,
        draw(policies()),
        draw(st.sampled_from(CALENDARS)),
        rules,
        draw(escalations()),
        draw(instants(assigned)),
    )


def outcome(function: Any, args: tuple[Any, ...]) -> object:
    try:
        return function(*args)
    except (ValueError, TypeError) as e:
        return (type(e), str(e))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_compiled_and_python_engines_agree(case: tuple[Any, ...]) -> None:
    native = speedups()
    assert outcome(native.evaluate_lead, case) == outcome(engine.evaluate_lead_python, case)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_they_agree_on_naive_datetimes_too(case: tuple[Any, ...]) -> None:
    native = speedups()
    lead, touches, *rest = case
    naive = [replace(touch, at=touch.at.replace(tzinfo=None)) for touch in touches[:1]]
    history = tuple(replace(c, at=c.at.replace(tzinfo=None)) for c in lead.status_history)
    for variant in (
        (replace(lead, created_at=lead.created_at.replace(tzinfo=None)), touches, *rest),
        (replace(lead, status_history=history), touches, *rest),
        (lead, naive + touches[1:], *rest),
        (*case[:-1], case[-1].replace(tzinfo=None)),
    ):
        assert outcome(native.evaluate_lead, variant) == outcome(
            engine.evaluate_lead_python, variant
        )


def test_they_agree_on_the_benchmark_mix() -> None:
    native = speedups()
    spec = importlib.util.spec_from_file_location("bench_engine", ROOT / "benchmarks/engine.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    compared = 0
    for lead, touches, index in bench.synthetic_leads(4000, seed=3):
        args = (
            lead,
            touches,
            bench.select_policy(lead, bench.POLICIES),
            bench.CALENDARS[index],
            bench.RULES,
            bench.ESCALATION,
            bench.NOW,
        )
        assert native.evaluate_lead(*args) == engine.evaluate_lead_python(*args), lead.id
        compared += 1
    assert compared == 4000
