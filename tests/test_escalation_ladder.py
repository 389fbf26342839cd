"""The escalation ladder over time (issue 15): a digest slot missed while no worker ran is caught
up, and every recipient on the ladder keeps being reminded on its own interval while the breach
lasts — through run-once's stages against the fakes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.world import CONFIG, Clock, World, make_world
from worker.pipeline.stages import run_once

TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _world(tmp_path: Path, database_url: str, config: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, clock=Clock(TUESDAY_10), config=config)


DIGESTS = CONFIG.replace(
    "  - {after: 2h, notify: manager}", "  - {after: 30m, notify: manager, digest: true}"
).replace(
    "schedules: {sync: 1s, evaluate: 1s, deliver: 1s}",
    'schedules: {sync: 1s, evaluate: 1s, deliver: 1s, digest: ["09:00", "14:00"]}',
)


@pytest.fixture
def digest_world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from _world(tmp_path, database_url, DIGESTS)


def test_an_escalation_due_while_no_worker_ran_takes_the_digest_slot_it_missed(
    digest_world: World,
) -> None:
    world = digest_world
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(0))  # breached at 11:00, the manager's level at 11:30
    with world.context() as ctx:
        run_once(ctx)
    assert world.slack.messages == []
    world.clock.now = TUESDAY_10.replace(hour=14, minute=5)  # no worker ran from 10:00 to 14:05
    with world.context() as ctx:
        run_once(ctx)
    # The 14:00 digest passed while the escalation was due: it goes out now, not tomorrow 09:00.
    (digest,) = world.slack.dms_to("U0MIKE")
    assert "Maria Lopez" in str(digest.blocks)
    world.clock.now = TUESDAY_10 + timedelta(days=1, hours=-1, minutes=5)  # Wednesday 09:05
    with world.context() as ctx:
        run_once(ctx)
    assert len(world.slack.dms_to("U0MIKE")) == 1  # once


REPEATS = CONFIG.replace(
    "  - {after: 0m, notify: rep}", "  - {after: 0m, notify: rep, repeat_every: 4h}"
).replace("  group_wait: 0s", "  group_wait: 0s\n  repeat_every: 1d")


@pytest.fixture
def repeat_world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from _world(tmp_path, database_url, REPEATS)


def test_each_recipient_on_the_ladder_is_reminded_on_its_own_interval(repeat_world: World) -> None:
    world = repeat_world
    world.add_rep()
    world.add_lead(assigned_ago=timedelta(0))  # breached at 11:00, the manager paged at 13:00

    def run_at(hours_after_10: float) -> tuple[int, int]:
        world.clock.now = TUESDAY_10 + timedelta(hours=hours_after_10)
        with world.context() as ctx:
            run_once(ctx)
        return len(world.slack.dms_to("U0LENA")), len(world.slack.dms_to("U0MIKE"))

    assert run_at(3.1) == (1, 1)  # 13:06: the breach to the rep, the escalation to the manager
    assert run_at(5.1) == (2, 1)  # 15:06: the rep's 4-hourly reminder (due 15:00)
    # Wednesday 13:06: the rep is still reminded (once more: the latest repeat only), and the
    # manager gets the daily repeat of their level.
    assert run_at(27.1) == (3, 2)
    assert run_at(27.2) == (3, 2)  # nothing twice


@pytest.mark.parametrize("via_digest", [False, True], ids=["direct", "digest"])
def test_a_resolved_breach_reaches_everyone_who_was_paged_in_their_thread(
    tmp_path: Path, database_url: str, via_digest: bool
) -> None:
    config = DIGESTS if via_digest else CONFIG
    for world in _world(tmp_path, database_url, config):
        world.add_rep()
        lead = world.add_lead(assigned_ago=timedelta(hours=5))  # breached 4 h ago: manager paged
        world.clock.now = TUESDAY_10.replace(hour=14, minute=1)  # after the 14:00 digest time
        with world.context() as ctx:
            run_once(ctx)
        (paged,) = world.slack.dms_to("U0MIKE")
        (told,) = world.slack.dms_to("U0LENA")
        world.add_call(lead)  # the rep finally calls
        world.clock.advance(timedelta(minutes=5))
        with world.context() as ctx:
            run_once(ctx)
        rep_news = world.slack.dms_to("U0LENA")[1:]
        manager_news = world.slack.dms_to("U0MIKE")[1:]
        assert [m.thread_ts for m in rep_news] == [told.ts]
        assert [m.thread_ts for m in manager_news] == [paged.ts]  # under the message that paged
        assert "late" in manager_news[0].text.lower()
