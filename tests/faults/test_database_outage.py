"""PostgreSQL unreachable for a moment during a sync (issue 14, row 9): the worker gives its
sync lease back once the database answers again, so the next sync is not blocked for a TTL.
The outage is a TCP proxy cut on loopback; the shared server keeps running."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tests.e2e.world import World, make_world
from tests.faults.proxy import TcpProxy
from worker.crm.records import CrmLead, Page, SearchFrom
from worker.pipeline.stages import run_stage
from worker.store.models import StageLease


@pytest.fixture
def proxied_world(tmp_path: Path, postgres_url: str) -> Iterator[tuple[World, TcpProxy]]:
    parts = urlsplit(postgres_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
        for world in make_world(tmp_path, url):
            yield world, proxy


class _OutageDuringSearch:
    """The CRM client, which cuts the database during its first lead search and brings it
    back ``outage`` seconds later."""

    def __init__(self, inner: Any, proxy: TcpProxy, outage: float) -> None:
        self.inner, self.proxy, self.outage = inner, proxy, outage
        self.done = False

    def search_leads_changed_since(
        self, since: datetime | SearchFrom, *, after: str | None = None
    ) -> Page[CrmLead]:
        page: Page[CrmLead] = self.inner.search_leads_changed_since(since, after=after)
        if not self.done:
            self.done = True
            self.proxy.cut()
            threading.Timer(self.outage, self.proxy.restore).start()
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.postgres
def test_a_short_database_outage_mid_sync_does_not_block_the_next_sync(
    proxied_world: tuple[World, TcpProxy],
) -> None:
    world, proxy = proxied_world
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(minutes=5))
    with world.context() as ctx:
        ctx._crm = _OutageDuringSearch(ctx.crm, proxy, outage=1.5)
        with pytest.raises(OperationalError):
            run_stage(ctx, "sync")  # the page could not be stored: nothing moved on
        with ctx.sessions() as session:
            lease = session.scalars(select(StageLease).where(StageLease.name == "sync")).one()
            assert lease.holder is None  # given back once the database answered
        again = run_stage(ctx, "sync")  # the same instant: not blocked for a TTL
        assert again.as_dict()["already_running"] is False
        assert again.as_dict()["leads"] == 1


@pytest.mark.postgres
def test_a_message_slack_accepted_is_recorded_through_a_short_outage(
    proxied_world: tuple[World, TcpProxy],
) -> None:
    world, proxy = proxied_world
    for n, name in enumerate(("Lena Fischer", "Jonas Weber", "Mia Wolf"), start=1):
        world.add_rep(f"10{n}", name, f"U0REP{n}")
        world.add_lead(owner_id=f"10{n}", assigned_ago=timedelta(hours=2))

    def cut_for_a_moment(_: int) -> None:  # Slack has the first message; the database goes
        proxy.cut()
        threading.Timer(1.5, proxy.restore).start()

    world.slack.during_call("chat.postMessage", cut_for_a_moment, done=True)
    with world.context() as ctx:
        for stage in ("sync", "evaluate", "deliver"):
            run_stage(ctx, stage)
        world.clock.advance(timedelta(minutes=10))  # past any claim: what is due is resent
        run_stage(ctx, "deliver")
    assert sorted(m.user_id for m in world.slack.messages) == ["U0REP1", "U0REP2", "U0REP3"]
