"""The store on both backends: migrations, idempotent upserts, outbox dedup and leases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from worker.crm.records import CrmLead, CrmTouch
from worker.store import mirror, outbox, queries
from worker.store.db import make_engine, upgrade
from worker.store.models import Finding, Lead, LeadStatusChange, OutboxRow

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _lead(**overrides: object) -> CrmLead:
    values: dict[str, object] = {
        "id": "1",
        "created_at": NOW - timedelta(days=1),
        "modified_at": NOW - timedelta(hours=1),
        "owner_id": "101",
        "owner_assigned_at": NOW - timedelta(hours=2),
        "first_name": "Maria",
        "status": "OPEN",
    }
    values.update(overrides)
    return CrmLead(**values)  # type: ignore[arg-type]


def _envelope(key: str, lead_id: str = "1") -> outbox.Envelope:
    return outbox.Envelope(
        dedup_key=key,
        kind="breach",
        lead_id=lead_id,
        rule="first_touch",
        level=0,
        recipient="email:lena@example.com",
        delivery=outbox.Delivery.DIRECT,
        payload={"x": 1},
        due_at=NOW,
    )


def test_migrations_create_every_table_and_run_twice(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # idempotent
    engine = make_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {
        "owners",
        "leads",
        "touches",
        "touch_leads",
        "sync_cursors",
        "findings",
        "outbox",
        "lead_status_changes",
        "slack_users",
    } <= tables


def test_datetimes_come_back_aware_utc(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        mirror.upsert_lead(session, _lead(), NOW)
        session.commit()
    with sessions() as session:
        lead = session.get(Lead, "1")
        assert lead is not None
        assert lead.owner_assigned_at == NOW - timedelta(hours=2)
        assert lead.owner_assigned_at.tzinfo is not None


def test_upserting_the_same_lead_twice_changes_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert mirror.upsert_lead(session, _lead(), NOW) is True
        session.commit()
    with sessions() as session:
        session.get(Lead, "1").dirty = False  # type: ignore[union-attr]
        assert mirror.upsert_lead(session, _lead(), NOW) is False
        session.commit()
        assert session.get(Lead, "1").dirty is False  # type: ignore[union-attr]


def test_an_older_copy_never_overwrites_a_newer_one(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        mirror.upsert_lead(session, _lead(status="WORKING"), NOW)
        mirror.upsert_lead(session, _lead(status="OPEN", modified_at=NOW - timedelta(hours=3)), NOW)
        session.commit()
        assert session.get(Lead, "1").status == "WORKING"  # type: ignore[union-attr]


def test_status_changes_are_kept_as_history(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        mirror.upsert_lead(session, _lead(status="OPEN"), NOW)
        mirror.upsert_lead(session, _lead(status="BAD_TIMING", modified_at=NOW), NOW)
        session.commit()
        history = session.scalars(select(LeadStatusChange.status).order_by(LeadStatusChange.at))
        assert list(history) == ["OPEN", "BAD_TIMING"]


def test_a_new_touch_marks_its_leads_dirty(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        mirror.upsert_lead(session, _lead(), NOW)
        session.get(Lead, "1").dirty = False  # type: ignore[union-attr]
        touch = CrmTouch(id="9", kind="call", occurred_at=NOW, modified_at=NOW, lead_ids=("1",))
        assert mirror.upsert_touch(session, touch, NOW) == {"1"}
        session.commit()
        assert session.get(Lead, "1").dirty is True  # type: ignore[union-attr]
        assert [b.touches[0].id for b in queries.load_bundles(session, ["1"])] == ["call:9"]


def test_the_cursor_only_moves_forward(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        mirror.advance_cursor(session, "hubspot:leads", NOW, NOW)
        mirror.advance_cursor(session, "hubspot:leads", NOW - timedelta(days=1), NOW)
        session.commit()
        assert mirror.cursor_at(session, "hubspot:leads") == NOW


def test_the_outbox_keeps_one_row_per_dedup_key(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert outbox.enqueue(session, [_envelope("k1"), _envelope("k2")], NOW) == 2
        session.commit()
    with sessions() as session:
        assert outbox.enqueue(session, [_envelope("k1"), _envelope("k3")], NOW) == 1
        session.commit()
        assert len(session.scalars(select(OutboxRow)).all()) == 3


def test_two_senders_never_claim_the_same_row(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        outbox.enqueue(session, [_envelope(f"k{i}") for i in range(5)], NOW)
        session.commit()
    lease = timedelta(minutes=2)
    with sessions() as first, sessions() as second:
        a = outbox.claim(first, "email:lena@example.com", NOW, lease, holder="a")
        b = outbox.claim(second, "email:lena@example.com", NOW, lease, holder="b")
    assert len(a) == 5
    assert b == []


def test_an_expired_lease_is_claimed_again(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        outbox.enqueue(session, [_envelope("k1")], NOW)
        session.commit()
    lease = timedelta(minutes=2)
    with sessions() as session:
        assert len(outbox.claim(session, "email:lena@example.com", NOW, lease, holder="a")) == 1
        later = NOW + lease + timedelta(seconds=1)
        assert outbox.recipients_due(session, later) == ["email:lena@example.com"]
        again = outbox.claim(session, "email:lena@example.com", later, lease, holder="b")
        assert [r.attempts for r in again] == [2]


def test_a_stopped_pass_gives_back_all_it_holds_but_what_slack_accepted(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        outbox.enqueue(session, [_envelope(f"k{i}") for i in range(3)], NOW)
        session.commit()
    lease = timedelta(minutes=5)
    with sessions() as session:
        accepted, *rest = outbox.claim(session, "email:lena@example.com", NOW, lease, holder="a")
        assert outbox.release_all(session, "b") == 0  # not b's
        assert outbox.release_all(session, "a", keep=[accepted.id]) == len(rest) == 2
        session.commit()
        # Due again at once, not when the claim runs out; the accepted one waits for its record.
        again = outbox.claim(session, "email:lena@example.com", NOW, lease, holder="c")
        assert sorted(r.id for r in again) == sorted(r.id for r in rest)


def test_the_models_and_the_migrations_agree(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from worker.store.models import Base

    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_pruning_forgets_only_news_that_cannot_come_back(
    sessions: sessionmaker[Session],
) -> None:
    old, young = NOW - timedelta(days=100), NOW - timedelta(days=10)

    def row(key: str, lead: str, status: str, created: datetime) -> OutboxRow:
        return OutboxRow(
            dedup_key=key,
            kind="breach",
            lead_id=lead,
            rule="first_touch",
            level=0,
            recipient="email:lena@example.com",
            payload={"x": 1},
            created_at=created,
            due_at=created,
            status=status,
            attempts=0,
        )

    def finding(lead: str, state: str) -> Finding:
        return Finding(lead_id=lead, rule="first_touch", policy="p", state=state, evaluated_at=NOW)

    with sessions() as session:
        session.add_all(
            [
                row("met-old", "A", "sent", old),  # forgotten
                row("superseded-old", "A", "superseded", old),  # forgotten
                row("breached-old", "B", "sent", old),  # still breached: its key must stay
                row("warning-old", "W", "sent", old),  # still warning: same
                row("met-young", "C", "sent", young),  # within keep_sent_for
                row("pending-old", "D", "pending", old),  # not sent yet
                row("sibling-old", "D", "sent", old),  # news about D still waits to go out
                row("no-finding-old", "E", "failed", old),  # lead gone: forgotten
            ]
        )
        session.add_all([finding("A", "met_late"), finding("B", "breached")])
        session.add_all([finding("W", "warning"), finding("C", "met")])
        session.commit()
        assert outbox.prune(session, NOW - timedelta(days=90)) == 3
        session.commit()
        kept = set(session.scalars(select(OutboxRow.dedup_key)))
    assert kept == {"breached-old", "warning-old", "met-young", "pending-old", "sibling-old"}
    with sessions() as session:  # the keys that stayed still stop a second notice
        assert outbox.enqueue(session, [_envelope("breached-old", "B")], NOW) == 0


def _bookkeeping(session: Session, n: int) -> None:
    outbox.set_health(session, "slack", True, "", NOW)
    outbox.record_stage_run(session, "deliver", NOW)
    outbox.remember_slack_user(session, "lena@example.com", f"U{n}", None, NOW)


def _agreement(session: Session, n: int) -> None:
    assert queries.apply_agreement(session, "fingerprint", NOW) == 0  # a new store: none to mark


@pytest.mark.parametrize("write", [_bookkeeping, _agreement], ids=["bookkeeping", "agreement"])
def test_workers_writing_the_same_new_row_at_once_all_succeed(
    sessions: sessionmaker[Session], write: Callable[[Session, int], None]
) -> None:
    """Health, stage-run and Slack-user rows (deliver), the agreement row (evaluate passes that
    start together on a new store): each inserted by whichever worker comes first."""
    import threading

    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        session = sessions()
        try:
            session.connection()  # each in its own transaction before the race
            start.wait()
            write(session, n)
            session.commit()
        except BaseException as e:  # an IntegrityError here rolled back a sent message's record
            errors.append(e)
        finally:
            session.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
