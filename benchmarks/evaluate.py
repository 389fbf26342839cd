"""The evaluate stage at volume: a first evaluation of N stored leads, store round trips included.

Seeds a throw-away store (SQLite, or ``--database-url`` for PostgreSQL: give it an empty
database) with N leads of the example config's mix, assigned over the last 30 days, then times
one ``evaluate`` pass: the engine plus loading bundles, writing findings and queueing notices.
The last line is machine-readable: ``leads=<N> leads_per_s=<int> notifications=<int>``.

    .venv/bin/python benchmarks/evaluate.py [--leads 20000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from worker.config import Agreement, load_config
from worker.crm.records import CrmLead
from worker.pipeline.evaluate import evaluate
from worker.store import mirror
from worker.store.db import make_engine, make_sessionmaker, session_scope, upgrade

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def synthetic_leads(count: int) -> list[CrmLead]:
    return [
        CrmLead(
            id=str(i),
            created_at=NOW - timedelta(days=i % 30, hours=2),
            modified_at=NOW - timedelta(hours=1),
            owner_id=str(100 + i % 40),
            owner_assigned_at=NOW - timedelta(days=i % 30, hours=1),
            first_name=f"Lead{i}",
            last_name="Example",
            company=f"Company {i % 97}",
            email=f"lead{i}@example.com",
            phone="+49 30 1234567",
            status="OPEN",
            priority=("HIGH", "MEDIUM", "LOW")[i % 3],
            score=float(i % 100),
        )
        for i in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    agreement = Agreement(load_config(ROOT / "config" / "sla.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        leads = synthetic_leads(args.leads)
        with session_scope(sessions) as session:
            for start in range(0, len(leads), 500):
                mirror.upsert_leads(session, leads[start : start + 500], NOW)
        started = time.perf_counter()
        summary = evaluate(agreement, sessions, NOW)
        elapsed = time.perf_counter() - started
        engine.dispose()
    print(f"evaluate: {summary.as_dict()}")
    print(f"store: {url.split(':', 1)[0]}, {elapsed:.1f} s")
    print(
        f"leads={summary.leads} leads_per_s={int(summary.leads / elapsed)} "
        f"notifications={summary.notifications}"
    )
    # Every seeded lead has an owner and a policy: a pass that judged fewer lost work.
    return 0 if summary.leads == args.leads and summary.skipped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
