"""Single-flight stages: a lease row per stage, so that one worker runs it at a time.

Beat queues a sync every couple of minutes, and a first sync of a large portal takes far longer;
without a lease every idle worker would start its own copy, each spending the same CRM request
budget on the same pages. The lease is a row taken with one conditional UPDATE (the outbox's
claim pattern), held for a time-to-live and renewed as the work goes on, so a worker that dies
holding it blocks the stage only until the lease runs out.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.store.db import UNREACHABLE, retrying, session_scope
from worker.store.models import StageLease

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class LeaseLost(RuntimeError):
    """Another worker took the lease over (ours ran out while we stalled): stop, it goes on."""


def new_holder() -> str:
    """A name for this claim that says where it runs (host, process) and is never reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def take(session: Session, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take the lease ``name`` (or extend our own) unless another holder's is still running."""
    dialect = session.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert_fn(StageLease).values(name=name).on_conflict_do_nothing())
    result = session.execute(
        update(StageLease)
        .where(
            StageLease.name == name,
            or_(
                StageLease.holder == holder,
                StageLease.leased_until.is_(None),
                StageLease.leased_until <= now,
            ),
        )
        .values(holder=holder, leased_until=now + ttl)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def give_back(session: Session, name: str, holder: str) -> None:
    """End our lease now (nothing happens if it is no longer ours)."""
    session.execute(
        update(StageLease)
        .where(StageLease.name == name, StageLease.holder == holder)
        .values(holder=None, leased_until=None)
    )


#: How long a lease lasts unless renewed: a stage renews it at every step (a sync page takes
#: seconds), so a worker that dies holding it blocks the stage for this long at most.
LEASE_TTL = timedelta(minutes=3)


class Lease:
    """``with Lease(...) as lease:`` → ``lease.held``; call ``lease.renew()`` as work goes on."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        name: str,
        clock: Callable[[], datetime],
        ttl: timedelta = LEASE_TTL,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sessions = sessions
        self._name = name
        self._clock = clock
        self._ttl = ttl
        self._sleep = sleep
        self.holder = new_holder()
        self.held = False

    def __enter__(self) -> Lease:
        try:
            with session_scope(self._sessions) as session:
                self.held = take(session, self._name, self.holder, self._clock(), self._ttl)
        except UNREACHABLE:
            # The server may have committed the take and lost the connection before it
            # answered (PostgreSQL stopped mid-commit): we may hold the lease without knowing
            # it, and nobody would give it back before it ran out. Giving back is conditional
            # on our holder name, so it is harmless when the take never landed.
            self._give_back()
            raise
        return self

    def renew(self) -> None:
        with session_scope(self._sessions) as session:
            if not take(session, self._name, self.holder, self._clock(), self._ttl):
                self.held = False
                raise LeaseLost(f"{self._name}: another worker took over the lease")

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.held = False
            self._give_back()

    def _give_back(self) -> None:
        """Give the lease back, retrying while the database is unreachable (the stage may have
        failed for that very reason): a live worker must not block the stage for a whole TTL
        because of a short outage. Never raises: the lease runs out by itself at worst."""
        try:
            retrying(
                self._sessions,
                lambda session: give_back(session, self._name, self.holder),
                f"giving the {self._name} lease back",
                sleep=self._sleep,
            )
        except UNREACHABLE as e:
            log.error(
                "%s: could not give the lease back (%s); it runs out within %s",
                self._name,
                type(e.orig).__name__,
                self._ttl,
            )


def alone(
    sessions: Callable[[], Session],
    name: str,
    clock: Callable[[], datetime],
    work: Callable[[Lease], _T],
    *,
    when_busy: Callable[[], _T],
) -> _T:
    """Run ``work(lease)`` holding the lease ``name``; ``when_busy()`` when another worker holds
    it, or took it over while ``work`` renewed it (work stops at its last committed step)."""
    with Lease(sessions, name, clock) as lease:
        if not lease.held:
            log.info("%s: another worker is running it; this run is skipped", name)
            return when_busy()
        try:
            return work(lease)
        except LeaseLost as e:
            log.warning("%s stopped after its last committed step: %s", name, e)
            return when_busy()
