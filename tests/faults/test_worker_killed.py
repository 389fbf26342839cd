"""A worker killed with SIGKILL in the middle of a stage (issue 14): mid-sync, mid-evaluate,
mid-deliver. ``sla-worker run-once`` runs as a subprocess against the fakes and PostgreSQL and
is killed at a chosen point; a later run, once the dead worker's lease and claims have run out,
finishes the work. Then no lead is skipped, no notice is lost, and no message is sent twice
except the one the README documents (a worker killed after Slack took a message and before it
marked the row sent: that message goes out again)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.e2e.world import Clock, World, make_world, outbox_rows
from tests.test_cli import SCRIPT
from tests.test_integration_celery import wait_until
from worker.pipeline.stages import run_once
from worker.store.db import make_engine, make_sessionmaker, upgrade
from worker.store.models import Finding, Lead

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPS = 40
LEADS_PER_REP = 75  # 3,000 leads: 15 search pages of 200, six evaluate batches
#: Past every lease and claim a dead worker can leave (sync/evaluate lease 3 min, outbox 5 min).
LEASES_RUN_OUT = timedelta(minutes=6)


@pytest.fixture
def world(tmp_path: Path, postgres_url: str) -> Iterator[World]:
    # The fakes' clock starts just behind the wall clock the subprocess worker reads.
    clock = Clock(datetime.now(UTC) - timedelta(seconds=10))
    yield from make_world(tmp_path, postgres_url, send_resolved=False, clock=clock)


def _populate(world: World) -> set[str]:
    """40 reps with 75 leads each, every first touch breached (the escalation is not due)."""
    lead_ids: set[str] = set()
    for rep in range(REPS):
        owner_id = str(200 + rep)
        world.add_rep(owner_id, f"Rep{rep} Seller", f"U0REP{rep:02d}")
        for n in range(LEADS_PER_REP):
            world.clock.advance(timedelta(milliseconds=1))
            lead_ids.add(
                world.add_lead(
                    owner_id=owner_id, assigned_ago=timedelta(minutes=90), name=f"L{rep}x{n} Lead"
                )
            )
    upgrade(world.database_url)
    return lead_ids


class Killable:
    """``sla-worker run-once`` in a subprocess, killed with SIGKILL by :meth:`kill`."""

    def __init__(self, world: World, workdir: Path) -> None:
        self.log = workdir / "run-once.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(SCRIPT), "run-once"],
                env={**os.environ, **world.env()},
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.killed = False

    def kill(self) -> None:
        """Kill now and wait until the process is gone (a caller inside a fake's request handler
        thereby holds the answer back until the worker can no longer read it)."""
        if self.process.poll() is None:
            self.killed = True  # first: finish() in another thread may see the process end
            self.process.kill()
            self.process.wait(timeout=30)

    def finish(self) -> None:
        try:
            self.process.wait(timeout=180)
        finally:
            self.kill()
        assert self.killed, f"the worker ended before it was killed:\n{self.log.read_text()}"


def _count(world: World, column: Any) -> int:
    engine = make_engine(world.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return int(session.scalar(select(func.count(column))) or 0)
    finally:
        engine.dispose()


def _recover_and_check(world: World, lead_ids: set[str], *, resent: int) -> None:
    """A later run finishes the work; then the store, the outbox and Slack are complete."""
    world.clock.now = datetime.now(UTC) + LEASES_RUN_OUT
    with world.context() as ctx:
        result = run_once(ctx)
        assert result["failed"] == {}
        rows = outbox_rows(ctx)
    assert _count(world, Lead.id) == len(lead_ids)  # no lead skipped
    assert _count(world, Finding.lead_id) >= len(lead_ids)
    told = [row.lead_id for row in rows if row.rule == "first_touch" and row.level == 0]
    assert sorted(told) == sorted(lead_ids)  # one notice per lead: none lost, none doubled
    assert {row.status for row in rows} == {"sent"}
    dms = [len(world.slack.dms_to(f"U0REP{rep:02d}")) for rep in range(REPS)]
    assert sum(dms) == REPS + resent, dms  # each rep told once, but for the documented window
    assert all(1 <= n <= 2 for n in dms), dms


def test_killed_mid_sync(world: World, tmp_path: Path) -> None:
    lead_ids = _populate(world)
    searches: list[str] = []
    worker: Killable | None = None

    def kill_on_third_page(kind: str, body: dict[str, Any]) -> None:
        if kind == "contacts":
            searches.append(kind)
            if len(searches) == 3 and worker is not None:
                # Sync asks for pages ahead of the one it stores: kill once one is committed.
                wait_until("a page of leads is stored", lambda: _count(world, Lead.id) > 0, 60)
                worker.kill()

    world.hubspot.during_search(kill_on_third_page)
    worker = Killable(world, tmp_path)
    worker.finish()
    assert 0 < _count(world, Lead.id) < len(lead_ids)  # killed with the sync half done
    _recover_and_check(world, lead_ids, resent=0)


def test_killed_mid_evaluate(world: World, tmp_path: Path) -> None:
    lead_ids = _populate(world)
    worker = Killable(world, tmp_path)
    judged: Callable[[], int] = lambda: _count(world, Finding.lead_id)  # noqa: E731
    wait_until("the first evaluate batch is committed", lambda: judged() > 0, timeout=120)
    worker.kill()
    worker.finish()
    assert 0 < judged() < len(lead_ids)  # killed with evaluate half done
    assert world.slack.messages == []
    _recover_and_check(world, lead_ids, resent=0)


@pytest.mark.parametrize("posted", [False, True], ids=["before-slack-took-it", "after"])
def test_killed_mid_deliver(world: World, tmp_path: Path, posted: bool) -> None:
    lead_ids = _populate(world)
    worker: Killable | None = None

    # Killed on either side of the 15th DM: before Slack took it (nothing of it was sent), or
    # after Slack took it and before the worker heard so (the documented window).
    def kill_at_15th(n: int) -> bool:
        if n == 15 and worker is not None:
            worker.kill()
            return True  # (before Slack did it: the post is dropped with the worker)
        return False

    world.slack.during_call("chat.postMessage", kill_at_15th, done=posted)
    worker = Killable(world, tmp_path)
    worker.finish()
    sent_before = len(world.slack.messages)
    assert sent_before == (15 if posted else 14)
    _recover_and_check(world, lead_ids, resent=1 if posted else 0)
