"""The evaluate pass at the store: it walks due leads by index (each once, in batches, never
rescanning), writes only what changed, and never loses a change sync made while it judged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import ROOT
from worker.config import Agreement, load_config
from worker.crm.records import CrmLead, CrmOwner
from worker.pipeline.evaluate import evaluate
from worker.store import judgements, mirror, queries
from worker.store.models import Finding, Lead

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _lead(lead_id: str, **overrides: object) -> CrmLead:
    values: dict[str, object] = {
        "id": lead_id,
        "created_at": NOW - timedelta(days=2),
        "modified_at": NOW - timedelta(hours=1),
        "owner_id": "101",
        "owner_assigned_at": NOW - timedelta(days=2),
        "first_name": f"Lead{lead_id}",
        "status": "OPEN",
    }
    values.update(overrides)
    return CrmLead(**values)  # type: ignore[arg-type]


def _store(sessions: sessionmaker[Session], ids: list[str]) -> None:
    with sessions.begin() as session:
        owner = CrmOwner(id="101", email="lena@example.com", first_name="Lena")
        mirror.upsert_owners(session, [owner], NOW)
        mirror.upsert_leads(session, [_lead(i) for i in ids], NOW)


def _walk(sessions: sessionmaker[Session], now: datetime, limit: int) -> list[str]:
    walk, seen = queries.DueWalk(), []
    with sessions() as session:
        while batch := queries.next_due_ids(session, now, limit, walk):
            seen += batch
    return seen


def test_a_pass_walks_dirty_leads_then_those_whose_check_came_each_once(
    sessions: sessionmaker[Session],
) -> None:
    _store(sessions, [f"{i:02d}" for i in range(10)])
    with sessions.begin() as session:
        session.execute(update(Lead).values(dirty=False, next_check_at=NOW + timedelta(days=1)))
        dirty = ["07", "02", "05"]
        session.execute(update(Lead).where(Lead.id.in_(dirty)).values(dirty=True))
        for minutes, lead_id in ((30, "09"), (10, "00"), (20, "04"), (10, "03")):
            at = NOW - timedelta(minutes=minutes)
            session.execute(update(Lead).where(Lead.id == lead_id).values(next_check_at=at))
    # Dirty by id, then by (next check, id); batches of two cross from one walk to the other.
    assert _walk(sessions, NOW, limit=2) == ["02", "05", "07", "09", "04", "00", "03"]
    assert _walk(sessions, NOW, limit=100) == ["02", "05", "07", "09", "04", "00", "03"]
    assert _walk(sessions, NOW - timedelta(hours=1), limit=2) == ["02", "05", "07"]


def test_a_change_made_while_a_lead_was_judged_keeps_it_dirty(
    sessions: sessionmaker[Session],
) -> None:
    _store(sessions, ["1", "2"])
    with sessions.begin() as session:
        bundles = {b.lead.id: b for b in queries.load_bundles(session, ["1", "2"])}
    with sessions.begin() as session:  # sync stores a newer copy of lead 1 meanwhile
        mirror.upsert_leads(session, [_lead("1", status="CONNECTED", modified_at=NOW)], NOW)
    judged = [
        {
            "id": lead_id,
            "revision": bundles[lead_id].lead.revision,
            "next_check_at": NOW + timedelta(hours=1),
            "recycle_reason": None,
            "missing_fields": [] if lead_id == "1" else ["phone"],
            "complete_since": NOW if lead_id == "1" else None,
        }
        for lead_id in ("1", "2")
    ]
    with sessions.begin() as session:
        judgements.save_leads(session, judged)
    with sessions() as session:
        dirty = {i: d for i, d in session.execute(select(Lead.id, Lead.dirty))}
        saved = {
            row.id: (row.next_check_at, row.missing_fields, row.complete_since)
            for row in session.execute(
                select(Lead.id, Lead.next_check_at, Lead.missing_fields, Lead.complete_since)
            )
        }
    assert dirty == {"1": True, "2": False}  # 1 is judged again, on its new status
    later = NOW + timedelta(hours=1)
    assert saved == {"1": (later, [], NOW), "2": (later, ["phone"], None)}


def test_a_verdict_that_did_not_change_is_not_written_again(
    sessions: sessionmaker[Session],
) -> None:
    agreement = Agreement(load_config(ROOT / "config" / "sla.yaml"))
    _store(sessions, ["1", "2", "3"])
    first = evaluate(agreement, sessions, NOW)
    assert first.leads == 3 and first.notifications > 0
    later = NOW + timedelta(minutes=1)
    with sessions.begin() as session:
        session.execute(update(Lead).values(**Lead.dirty_values()))
    again = evaluate(agreement, sessions, later)
    assert again.leads == 3 and again.notifications == 0
    with sessions() as session:
        written = set(session.scalars(select(Finding.evaluated_at)))
    assert written == {NOW}  # the same verdicts: not rewritten at the later pass
