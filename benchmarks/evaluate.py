"""The evaluate stage at volume: a first pass over N stored leads, then a pass where a share is due.

Seeds a throw-away store (SQLite, or ``--database-url`` for PostgreSQL: give it an empty
database) with N leads of the example config's mix and 40 reps, assigned over the last 30 days.
Then it times ``evaluate`` passes in processes of their own, so that their peak memory is their
own: the **first pass** (every lead new) and, an hour later, an **incremental pass** where
``--due`` of the leads changed in the CRM (sync marked them) — the pass a worker runs every
minute. That pass is timed twice: in new processes, and in processes that have run a pass
before, as a running worker's have (its context — configuration, calendars, database
connections, compiled statements — is opened once per process and kept: ``worker.tasks``); the
warm-up passes judge other leads (:data:`WARM_UP` each). Store round trips are included.

    .venv/bin/python benchmarks/evaluate.py [--stored 100000] [--due 0.01] [--database-url URL]
        [--processes N]

On PostgreSQL each pass is shared by ``--processes`` workers (default: one per core), each
claiming batches with ``FOR UPDATE SKIP LOCKED`` as the evaluate task and its helpers do in
production; its time runs from the start to the last worker's end, its peak RSS is the largest
worker's, its CPU time the workers' summed (PostgreSQL's is not in it): with the workers' CPU
near ``processes`` × the pass, the pass is bound by the machine's cores, and the figure moves
with their speed. The last line is machine-readable, the incremental pass of running workers:
``stored=<N> due=<n> processes=<p> pass_s=<s> leads_per_s=<int> cpu_s=<s> peak_rss_mb=<MB>``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import text, update

from worker.config import Agreement, load_config
from worker.crm.records import CrmLead, CrmOwner
from worker.pipeline.context import freeze_long_lived_objects
from worker.pipeline.evaluate import EvaluateSummary, evaluate
from worker.store import mirror
from worker.store.db import chunks, make_engine, make_sessionmaker, session_scope, upgrade
from worker.store.models import Lead

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
REPS = 40
SEED_BATCH = 2_000


def synthetic_leads(start: int, stop: int) -> Iterator[CrmLead]:
    for i in range(start, stop):
        yield CrmLead(
            id=f"{i:09d}",
            created_at=NOW - timedelta(days=i % 30, hours=2),
            modified_at=NOW - timedelta(hours=1),
            owner_id=str(100 + i % REPS),
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


def seed(url: str, stored: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    owners = [
        CrmOwner(id=str(100 + n), email=f"rep{n}@example.com", first_name="Rep", last_name=str(n))
        for n in range(REPS)
    ]
    with session_scope(sessions) as session:
        mirror.upsert_owners(session, owners, NOW)
    for start in range(0, stored, SEED_BATCH):
        with session_scope(sessions) as session:
            batch = list(synthetic_leads(start, min(start + SEED_BATCH, stored)))
            mirror.upsert_leads(session, batch, NOW)
    engine.dispose()


def changed_ids(stored: int, due: int, offset: int = 0) -> list[str]:
    """``due`` leads spread over the store (``offset``: a different set of the same spread)."""
    if not due:
        return []
    step = max(1, stored // due)
    return [f"{i:09d}" for i in range(offset % step, stored, step)][:due]


def mark_changed(url: str, ids: list[str]) -> None:
    """What a sync does when these leads changed in the CRM: mark them to be judged again."""
    engine = make_engine(url)
    with engine.begin() as connection:
        for chunk in chunks(ids):
            connection.execute(update(Lead).where(Lead.id.in_(chunk)).values(dirty=True))
    engine.dispose()


def settle(url: str) -> None:
    """What autovacuum does to a store that has run a while (it vacuums tables that take many
    inserts, PostgreSQL 13 and later): visibility map and statistics up to date, so the
    incremental pass below is the one a running worker makes, not one just after a bulk load."""
    if not url.startswith("postgresql"):
        return
    engine = make_engine(url)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()


def _pass(
    url: str, at: datetime, claim: bool, start: Event, out: Connection, warm_up: _Gate | None
) -> None:
    """One evaluate pass in this (child) process, once ``start`` is set (the others are
    ready too); sends back its summary, peak RSS and the CPU time the pass took. With
    ``warm_up``, a pass before, when the parent opens that gate (having marked other leads
    changed for it)."""
    agreement = Agreement(load_config(ROOT / "config" / "sla.yaml"))
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    freeze_long_lived_objects()  # as a worker process does once its context is open
    if warm_up is not None:
        go, done = warm_up
        go.wait()
        evaluate(agreement, sessions, at, claim=claim)
        done.set()
    start.wait()
    before = _cpu_s()
    summary = evaluate(agreement, sessions, at, claim=claim)
    cpu_s = _cpu_s() - before
    engine.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.send((summary, peak_mb, cpu_s))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timed(NamedTuple):
    """A timed pass: its summed summary, wall time from its start to the last worker's end,
    the workers' CPU time (summed; PostgreSQL's own is not in it) and the largest peak RSS."""

    summary: EvaluateSummary
    wall_s: float
    cpu_s: float
    peak_mb: float

    @property
    def leads_per_s(self) -> int:
        return int(self.summary.leads / self.wall_s) if self.wall_s else 0

    def describe(self) -> str:
        leads = self.summary.leads
        per_lead = f", {self.cpu_s / leads * 1e6:.0f} µs a lead" if leads else ""
        return (
            f"{self.wall_s:.2f} s, {self.leads_per_s} leads/s, "
            f"workers' CPU {self.cpu_s:.2f} s{per_lead}, peak RSS {self.peak_mb:.0f} MB"
        )


#: (go, done): the parent lets a child make its warm-up pass, the child says it is done.
_Gate = tuple[Event, Event]
#: Leads each worker judges in its warm-up pass (at most; fewer in a small store): 5 batches,
#: so that it has made each statement of a batch as often as psycopg waits before preparing it
#: (``prepare_threshold``).
WARM_UP = 2_500


def warm_up_ids(stored: int, due: list[str]) -> list[str]:
    """The leads of the warm-up passes: others than ``due``."""
    taken = set(due)
    others = changed_ids(stored, min(WARM_UP, stored // 4), offset=1)
    return [lead_id for lead_id in others if lead_id not in taken]


def timed_pass(
    url: str,
    at: datetime,
    processes: int,
    due: list[str] | None = None,
    warm_up: list[str] | None = None,
) -> Timed:
    """A pass shared by ``processes`` workers, as the evaluate task's helpers share one in
    production (PostgreSQL: each batch claimed with SKIP LOCKED), over the leads marked
    changed (``due``: marked here, once the workers are ready). ``warm_up``: other leads each
    worker first makes a pass over, marked changed for each in turn (so that each judges them
    all), as a worker that has been running has."""
    warm = warm_up or []
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    children = []
    gates: list[_Gate] = []
    for _ in range(processes):
        receive, send = context.Pipe(duplex=False)
        gate = (context.Event(), context.Event()) if warm else None
        child = context.Process(target=_pass, args=(url, at, processes > 1, start, send, gate))
        child.start()
        children.append((child, receive))
        gates += [gate] if gate else []
    time.sleep(2)  # the children import and connect; the pass is timed from here
    for go, done in gates:
        mark_changed(url, warm)
        go.set()
        done.wait()
    if due:
        mark_changed(url, due)
    started = time.perf_counter()
    start.set()
    results: list[tuple[EvaluateSummary, float, float]] = [
        receive.recv() for _, receive in children
    ]
    elapsed = time.perf_counter() - started
    for child, _ in children:
        child.join()
    total = EvaluateSummary()
    for summary, _, _ in results:
        total.leads += summary.leads
        total.skipped += summary.skipped
        total.notifications += summary.notifications
        total.breached += summary.breached
    cpu_s = sum(cpu for _, _, cpu in results)
    return Timed(total, elapsed, cpu_s, max(peak for _, peak, _ in results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=100_000, help="leads in the store")
    parser.add_argument("--due", type=float, default=0.01, help="share changed before pass 2")
    parser.add_argument("--database-url", default=None, help="an empty database (PostgreSQL)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="workers sharing each pass (PostgreSQL; default: one per core, as the evaluate "
        "task's helpers do); SQLite: always 1",
    )
    args = parser.parse_args()
    due = int(args.stored * args.due)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        store = url.split(":", 1)[0]
        processes = 1 if store == "sqlite" else (args.processes or os.cpu_count() or 1)
        started = time.perf_counter()
        seed(url, args.stored)
        print(
            f"seeded {args.stored} leads in {time.perf_counter() - started:.0f} s ({store}); "
            f"each pass shared by {processes} process(es)"
        )
        first = timed_pass(url, NOW, processes)
        print(f"first pass: {first.summary.as_dict()}")
        print(f"first pass: {first.describe()}")
        settle(url)
        ids = changed_ids(args.stored, due)
        cold = timed_pass(url, LATER, processes, ids)
        print(f"incremental pass: {cold.summary.as_dict()}")
        print(f"incremental pass, new worker processes: {cold.describe()}")
        warm = warm_up_ids(args.stored, ids)
        again = timed_pass(url, LATER, processes, ids, warm)
        print(f"incremental pass, running workers: {again.summary.as_dict()}")
        print(f"incremental pass, running workers: {again.describe()}")
    leads = again.summary.leads
    print(
        f"stored={args.stored} due={leads} processes={processes} pass_s={again.wall_s:.2f} "
        f"leads_per_s={again.leads_per_s} cpu_s={again.cpu_s:.2f} peak_rss_mb={again.peak_mb:.0f}"
    )
    # Every seeded lead has an owner and a policy: a pass that judged fewer lost work.
    complete = first.summary.leads == args.stored and first.summary.skipped == 0
    return 0 if complete and cold.summary.leads >= due and leads >= due else 1


if __name__ == "__main__":
    sys.exit(main())
