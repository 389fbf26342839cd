"""Single-flight sync: one worker holds the lease, the others skip; a dead holder's runs out."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tests.e2e.world import World
from worker.pipeline.context import Context
from worker.pipeline.stages import run_stage
from worker.store import leases
from worker.store.db import session_scope
from worker.store.leases import Lease, LeaseLost

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)


def take(sessions: sessionmaker[Session], holder: str, now: datetime) -> bool:
    with session_scope(sessions) as session:
        return leases.take(session, "sync", holder, now, TTL)


def test_a_lease_is_held_renewed_given_back_and_runs_out(sessions: sessionmaker[Session]) -> None:
    assert take(sessions, "a", NOW)
    assert not take(sessions, "b", NOW + timedelta(minutes=5))
    assert take(sessions, "a", NOW + timedelta(minutes=5))  # renewed until 10:15
    assert not take(sessions, "b", NOW + timedelta(minutes=14))
    assert take(sessions, "b", NOW + timedelta(minutes=15))  # a stalled: its lease ran out
    assert not take(sessions, "a", NOW + timedelta(minutes=16))
    with session_scope(sessions) as session:
        leases.give_back(session, "sync", "a")  # not a's any more: changes nothing
    assert not take(sessions, "c", NOW + timedelta(minutes=16))
    with session_scope(sessions) as session:
        leases.give_back(session, "sync", "b")
    assert take(sessions, "c", NOW + timedelta(minutes=16))


def test_racing_workers_get_one_lease(sessions: sessionmaker[Session]) -> None:
    start = threading.Barrier(6)
    won: list[str] = []

    def worker(name: str) -> None:
        start.wait()
        if take(sessions, name, NOW):
            won.append(name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_a_holder_that_lost_its_lease_is_told_on_renewal(sessions: sessionmaker[Session]) -> None:
    clock = [NOW]
    with Lease(sessions, "sync", lambda: clock[0], TTL) as first:
        assert first.held
        clock[0] += TTL
        with Lease(sessions, "sync", lambda: clock[0], TTL) as second:
            assert second.held
            with pytest.raises(LeaseLost):
                first.renew()
    with Lease(sessions, "sync", lambda: clock[0], TTL) as third:
        assert third.held  # the second gave it back on the way out


def test_a_sync_while_another_runs_skips_without_asking_the_crm(world: World, ctx: Context) -> None:
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(hours=1))
    with Lease(ctx.sessions, "sync", ctx.clock) as other_worker:
        assert other_worker.held
        before = sum(world.hubspot.counts.values())
        summary = run_stage(ctx, "sync")
        assert summary.already_running and summary.leads == 0
        assert sum(world.hubspot.counts.values()) == before
    summary = run_stage(ctx, "sync")  # the other worker is done: this one runs
    assert not summary.already_running and summary.leads == 1


def test_a_long_sync_renews_its_lease_page_by_page(world: World, ctx: Context) -> None:
    world.add_rep()
    for _ in range(3):
        world.add_lead(assigned_ago=timedelta(hours=1))
    renewals: list[datetime] = []
    real_take = leases.take

    def counting_take(session: Session, name: str, holder: str, now: datetime, ttl: timedelta):  # type: ignore[no-untyped-def]
        renewals.append(now)
        return real_take(session, name, holder, now, ttl)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(leases, "take", counting_take)
        summary = run_stage(ctx, "sync")
    # One take to start, then one renewal per committed page (leads, touches of each kind).
    assert summary.pages >= 2 and len(renewals) == 1 + summary.pages


class _AnswerLost(Session):
    """A session whose first commit lands and then reports the connection lost, as when
    PostgreSQL stops between writing the commit and answering it."""

    lost: list[bool]

    def commit(self) -> None:
        super().commit()
        if self.lost:
            self.lost.pop()
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))


def test_a_take_whose_answer_was_lost_gives_the_lease_back(
    sessions: sessionmaker[Session],
) -> None:
    _AnswerLost.lost = [True]
    answer_lost = sessionmaker(bind=sessions.kw["bind"], class_=_AnswerLost)
    lease = Lease(answer_lost, "sync", lambda: NOW, TTL, sleep=lambda _: None)
    with pytest.raises(OperationalError), lease:
        pass  # never reached: the take raised
    with Lease(sessions, "sync", lambda: NOW, TTL) as next_run:
        assert next_run.held  # not blocked for a whole TTL by a holder that never knew
