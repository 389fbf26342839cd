"""Delivery at volume: 10,000 breaches for 500 reps under 50 managers, in one deliver pass.

Seeds a throw-away SQLite store with one breach notice per lead for its rep and one digest
notice for its manager, all due now, then runs the real deliver stage through the real Slack
client against the fake Slack enforcing one message per second per channel (a message too
early is refused with 429). Prints the message count (it must grow with recipients, not with
breaches: ≤ 550), the wall time, and how many rows had to be retried because a channel's pace
was broken (must be 0). Last line is machine-readable.

    .venv/bin/python benchmarks/delivery.py [--breaches 10000 --reps 500 --managers 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from worker.config import Agreement, parse_config
from worker.fakes.slack import FakeSlack
from worker.notices import Notice, NoticeKind
from worker.pipeline.deliver import deliver
from worker.slack.client import SlackClient
from worker.store import outbox
from worker.store.db import make_engine, make_sessionmaker, upgrade
from worker.store.models import Finding
from worker.store.outbox import Delivery, Envelope

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _config(managers: int) -> Agreement:
    teams = {
        f"team{m}": {"calendar": "c", "manager": f"manager{m}@example.com"} for m in range(managers)
    }
    return Agreement(
        parse_config(
            {
                "calendars": {"c": {"timezone": "UTC", "hours": {"mon-sun": "00:00-24:00"}}},
                "teams": teams,
                "policies": [{"name": "default", "first_touch": "1h"}],
                "notifications": {"group_wait": "0s"},
            }
        )
    )


def _envelope(key: str, recipient: str, delivery: Delivery, notice: Notice) -> Envelope:
    return Envelope(
        dedup_key=key,
        kind=notice.kind,
        lead_id=notice.lead_id,
        rule=notice.rule,
        level=notice.level,
        recipient=recipient,
        delivery=delivery,
        payload=notice.to_payload(),
        due_at=NOW,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--breaches", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--managers", type=int, default=50)
    args = parser.parse_args()

    slack = FakeSlack("xoxb-bench", channel_rate_per_s=1.0)
    for r in range(args.reps):
        slack.add_user(f"U{r:05d}", f"rep{r}@example.com", f"Rep {r}", tz="UTC")
    for m in range(args.managers):
        slack.add_user(f"UM{m:04d}", f"manager{m}@example.com", f"Manager {m}", tz="UTC")
    slack.start()
    agreement = _config(args.managers)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        rows = []
        for i in range(args.breaches):
            rep = i % args.reps
            manager = rep % args.managers
            notice = Notice(
                kind=NoticeKind.BREACH,
                rule="first_touch",
                lead_id=str(i),
                lead_name=f"Lead {i}",
                company=f"Company {i % 97}",
                priority="HIGH",
                record_url=None,
                deadline_at=NOW - timedelta(minutes=i % 600),
                detail="no touch yet",
                level=0,
                policy="default",
                rep_name=f"Rep {rep}",
                timezone="UTC",
                team=f"team{manager}",
            )
            rows.append(
                _envelope(f"{i}|rep", f"email:rep{rep}@example.com", Delivery.DIRECT, notice)
            )
            escalation = replace(notice, kind=NoticeKind.ESCALATION, level=1)
            rows.append(
                _envelope(
                    f"{i}|mgr", f"email:manager{manager}@example.com", Delivery.DIGEST, escalation
                )
            )
        # The verdicts the notices stand on: deliver drops a notice whose breach is no longer
        # true (superseded), so every lead here is still breached.
        findings = [
            {
                "lead_id": str(i),
                "rule": "first_touch",
                "policy": "default",
                "state": "breached",
                "deadline_at": NOW - timedelta(minutes=i % 600),
                "detail": "no touch yet",
                "evaluated_at": NOW,
            }
            for i in range(args.breaches)
        ]
        with sessions() as session:
            session.execute(insert(Finding), findings)
            outbox.enqueue(session, rows, NOW)
            session.commit()

        client = SlackClient("xoxb-bench", slack.api_url)
        started = time.perf_counter()
        summary = deliver(client, sessions, agreement, NOW)
        wall = time.perf_counter() - started
        engine.dispose()
    slack.stop()

    recipients = args.reps + args.managers
    print(f"breaches:        {args.breaches}")
    print(f"recipients:      {recipients} ({args.reps} reps, {args.managers} managers)")
    print(f"messages:        {summary.messages} (rows sent {summary.rows_sent})")
    print(f"pace refusals:   {summary.rows_retrying} rows retried after a 429")
    print(f"superseded:      {summary.rows_superseded} rows (must be 0: every breach stands)")
    print(f"wall time:       {wall:.1f} s")
    print(
        f"breaches={args.breaches} recipients={recipients} messages={summary.messages} "
        f"wall_s={wall:.1f} retried={summary.rows_retrying}"
    )
    sent_all = summary.rows_sent == len(rows) and summary.rows_superseded == 0
    return 0 if sent_all and summary.rows_retrying == 0 and summary.messages <= recipients else 1


if __name__ == "__main__":
    sys.exit(main())
