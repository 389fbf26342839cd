"""The store keeps PostgreSQL's planner statistics current while a pass fills it, so that each
batch's lookups by lead id stay index scans instead of a scan of the whole table per batch (a
first pass quadratic in the leads: the outbox and findings it reads grow as it goes). Which
plan the statistics lead to shows only at a size no test here has: the evaluate benchmark at
1,000,000 leads measures it (`pg_stat_user_tables` counted 500 sequential scans of the outbox a
quarter into a first pass without them)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import ROOT
from worker.config import Agreement, load_config
from worker.crm.records import CrmLead, CrmOwner
from worker.pipeline.evaluate import STATISTICS_EVERY, evaluate
from worker.store import mirror, planner_stats
from worker.store.db import make_engine, make_sessionmaker, normalise_url, upgrade

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
BATCH = 50
#: Enough leads for the pass to look at the statistics again after it filled the outbox.
LEADS = BATCH * (STATISTICS_EVERY + 2)


@pytest.fixture
def pg_sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated PostgreSQL store. (This server may run without autovacuum, as CI's does: then
    nothing but the worker analyses its tables.)"""
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _store_leads(sessions: sessionmaker[Session], count: int) -> None:
    owners = [CrmOwner(id=str(100 + n), email=f"rep{n}@example.com") for n in range(4)]
    leads = [
        CrmLead(
            id=f"{i:06d}",
            created_at=NOW - timedelta(days=i % 20, hours=2),
            modified_at=NOW - timedelta(hours=1),
            owner_id=str(100 + i % 4),
            owner_assigned_at=NOW - timedelta(days=i % 20, hours=1),
            first_name=f"Lead{i}",
            status="OPEN",
            priority=("HIGH", "MEDIUM", "LOW")[i % 3],
        )
        for i in range(count)
    ]
    with sessions.begin() as session:
        mirror.upsert_owners(session, owners, NOW)
        mirror.upsert_leads(session, leads, NOW)


def _rows_known(sessions: sessionmaker[Session], table: str) -> float:
    """What the planner believes the table holds (-1: never analysed)."""
    with sessions() as session:
        query = text("SELECT reltuples FROM pg_class WHERE relname = :t")
        return float(session.execute(query, {"t": table}).scalar_one())


def test_a_first_pass_leaves_the_tables_it_filled_analysed(
    pg_sessions: sessionmaker[Session],
) -> None:
    _store_leads(pg_sessions, LEADS)
    agreement = Agreement(load_config(ROOT / "config" / "sla.yaml"))
    assert _rows_known(pg_sessions, "outbox") < 0  # never analysed

    summary = evaluate(agreement, pg_sessions, NOW, batch_size=BATCH)

    assert summary.leads == LEADS and summary.notifications > LEADS
    assert _rows_known(pg_sessions, "leads") == LEADS  # analysed before the first batch
    # and these when the pass looked again after STATISTICS_EVERY batches, with what the
    # batches before wrote
    assert _rows_known(pg_sessions, "outbox") >= BATCH * STATISTICS_EVERY
    assert _rows_known(pg_sessions, "findings") >= BATCH * STATISTICS_EVERY


def test_only_tables_that_changed_by_more_than_they_held_are_analysed_again(
    pg_sessions: sessionmaker[Session],
) -> None:
    # A new store: every table analysed once (empty, so cheaply), then none until they change.
    assert planner_stats.refresh(pg_sessions) == sorted(planner_stats.READ_BY_KEY)
    assert planner_stats.refresh(pg_sessions) == []
    _store_leads(pg_sessions, 999)
    assert planner_stats.refresh(pg_sessions) == []  # too few changes to matter
    _store_leads(pg_sessions, 1_500)
    assert planner_stats.refresh(pg_sessions) == ["lead_status_changes", "leads"]
    assert planner_stats.refresh(pg_sessions) == []
    _store_leads(pg_sessions, 1_200)  # the same 1,200 leads written again: fewer than held
    assert planner_stats.refresh(pg_sessions) == []


def test_one_worker_analyses_at_a_time_the_others_go_on(
    pg_sessions: sessionmaker[Session], postgres_url: str
) -> None:
    planner_stats.refresh(pg_sessions)
    _store_leads(pg_sessions, 1_500)
    raw = normalise_url(postgres_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw) as other:  # another worker, analysing now
        other.execute("SELECT pg_advisory_xact_lock(%s)", (planner_stats._LOCK,))
        assert planner_stats.refresh(pg_sessions) == []
    assert planner_stats.refresh(pg_sessions) == ["lead_status_changes", "leads"]


def test_sqlite_needs_no_statistics(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    _store_leads(sessions, 1_500)
    assert planner_stats.refresh(sessions) == []
    engine.dispose()
