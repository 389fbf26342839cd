"""Throughput of the pure SLA engine: synthetic leads evaluated on one core.

Run as ``.venv/bin/python benchmarks/engine.py [--leads N]``. Leads are generated lazily so that
memory stays flat; the last line is ``leads=<N> leads_per_s=<int> peak_rss_mb=<int>``. It must
never touch a database or the network: it measures the engine alone.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from worker.sla import (
    BusinessCalendar,
    BusinessSpan,
    EscalationLevel,
    EscalationPolicy,
    FollowUp,
    Lead,
    Policy,
    PolicyMatch,
    StatusChange,
    Touch,
    TouchRules,
    evaluate_lead,
    select_policy,
)

CALENDARS = (
    BusinessCalendar(
        name="emea",
        timezone="Europe/Berlin",
        weekly_hours={d: [(540, 750), (810, 1050)] for d in range(5)},
        holidays_country="DE",
        holidays_subdivision="BE",
    ),
    BusinessCalendar(
        name="amer",
        timezone="America/New_York",
        weekly_hours={d: [(540, 1020)] for d in range(5)},
        holidays_country="US",
    ),
    BusinessCalendar(
        name="apac",
        timezone="Asia/Tokyo",
        weekly_hours={d: [(540, 1080)] for d in range(5)},
        holidays_country="JP",
    ),
)
HOUR = timedelta(hours=1)
POLICIES = (
    Policy(
        name="hot",
        match=PolicyMatch(priorities=frozenset({"high"}), score_min=80),
        first_touch=BusinessSpan(time=HOUR),
        warn_before=BusinessSpan(time=timedelta(minutes=15)),
        follow_up=FollowUp(touches=6, within=BusinessSpan(days=10), max_gap=BusinessSpan(days=2)),
        min_time_spent=timedelta(minutes=20),
        min_open=BusinessSpan(days=14),
        recycle_after=BusinessSpan(days=21),
        pause_statuses=frozenset({"BAD_TIMING"}),
        return_statuses=frozenset({"UNQUALIFIED", "RECYCLED"}),
    ),
    Policy(
        name="warm",
        match=PolicyMatch(priorities=frozenset({"high", "medium"})),
        first_touch=BusinessSpan(time=4 * HOUR),
        warn_before=BusinessSpan(time=HOUR),
        follow_up=FollowUp(touches=4, within=BusinessSpan(days=10)),
        min_open=BusinessSpan(days=10),
        recycle_after=BusinessSpan(days=21),
        pause_statuses=frozenset({"BAD_TIMING"}),
        return_statuses=frozenset({"UNQUALIFIED"}),
    ),
    Policy(
        name="webinar",
        match=PolicyMatch(sources=frozenset({"webinar"})),
        first_touch=BusinessSpan(days=1),
        follow_up=FollowUp(touches=3, within=BusinessSpan(days=5)),
    ),
    Policy(name="default", first_touch=BusinessSpan(days=2)),
)
RULES = TouchRules(min_call=timedelta(minutes=1))
ESCALATION = EscalationPolicy(
    levels=(
        EscalationLevel(BusinessSpan(), ("rep",)),
        EscalationLevel(BusinessSpan(time=2 * HOUR), ("manager",)),
        EscalationLevel(BusinessSpan(days=1), ("channel:#sales-escalations",)),
    ),
    repeat_every=BusinessSpan(days=1),
)
NOW = datetime(2026, 3, 16, 10, 17, tzinfo=UTC)
OWNERS = tuple(f"rep-{i}" for i in range(40))
KINDS = ("call", "call", "email", "email", "email", "meeting", "note")
STATUSES = (None, "SENT", "SENT", "SENT", "BOUNCED")


def synthetic_leads(count: int, seed: int = 7) -> Iterator[tuple[Lead, list[Touch], int]]:
    """Leads assigned over the last 90 days with 0-10 touches; some paused, some returned."""
    rng = random.Random(seed)
    window = 90 * 86_400
    for index in range(count):
        assigned = NOW - timedelta(seconds=rng.randrange(window))
        owner = rng.choice(OWNERS)
        touches = [
            Touch(
                at=assigned + timedelta(seconds=rng.randrange(30 * 86_400)),
                kind=rng.choice(KINDS),
                owner_id=owner if rng.random() < 0.9 else rng.choice(OWNERS),
                duration=timedelta(seconds=rng.randrange(900)),
                direction="inbound" if rng.random() < 0.1 else "outbound",
                status=rng.choice(STATUSES),
            )
            for _ in range(rng.randrange(11))
        ]
        touches.sort(key=lambda t: t.at)  # the store returns touches in time order
        roll = rng.random()
        status: str = "WORKING"
        history: tuple[StatusChange, ...] = ()
        if roll < 0.05:
            status = "BAD_TIMING"
            history = (StatusChange(assigned + timedelta(days=rng.randrange(1, 20)), status),)
        elif roll < 0.10:
            status = "UNQUALIFIED"
            history = (StatusChange(assigned + timedelta(days=rng.randrange(1, 30)), status),)
        lead = Lead(
            id=str(index),
            created_at=assigned - timedelta(hours=1),
            owner_id=owner if rng.random() < 0.97 else None,
            assigned_at=assigned,
            status=status,
            priority=rng.choice(("high", "high", "medium", "low")),
            source=rng.choice(("web", "webinar", "event", "referral")),
            score=rng.randrange(101),
            status_history=history,
        )
        yield lead, touches, rng.randrange(len(CALENDARS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    # Generating leads is the caller's cost, not the engine's: build them in chunks outside the
    # timed section so the figure is the engine alone, yet memory stays flat.
    chunk = 20_000
    elapsed = 0.0
    done = 0
    states: dict[str, int] = {}
    generator = synthetic_leads(args.leads)
    while done < args.leads:
        batch = [next(generator) for _ in range(min(chunk, args.leads - done))]
        started = time.perf_counter()
        for lead, touches, calendar_index in batch:
            policy = select_policy(lead, POLICIES)
            evaluation = evaluate_lead(
                lead, touches, policy, CALENDARS[calendar_index], RULES, ESCALATION, NOW
            )
            first = evaluation.rules[0].state if evaluation.rules else "none"
            states[first] = states.get(first, 0) + 1
        elapsed += time.perf_counter() - started
        done += len(batch)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"first-touch states: {dict(sorted(states.items()))}")
    print(f"engine time {elapsed:.2f}s for {done} leads ({elapsed / done * 1e6:.1f} us/lead)")
    print(f"leads={done} leads_per_s={int(done / elapsed)} peak_rss_mb={peak_mb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
