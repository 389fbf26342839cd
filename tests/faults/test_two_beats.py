"""Two beats and two workers by mistake, with Slack answering a storm of 429s (issue 14): every
stage runs twice as often, in parallel, and each post may be refused several times — yet each
rep hears about each lead once and nothing is lost."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.world import RealClock, World, make_world
from tests.test_integration_celery import Service, services_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPS = 8


@pytest.fixture
def world(tmp_path: Path, postgres_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, postgres_url, send_resolved=False, clock=RealClock())


def test_two_beats_two_workers_and_a_429_storm_tell_each_rep_once(
    world: World, redis_url: str, tmp_path: Path
) -> None:
    env = services_env(world, redis_url, tmp_path)
    for rep in range(REPS):
        owner = str(300 + rep)
        world.add_rep(owner, f"Rep{rep} Seller", f"U0REP{rep}")
        world.add_lead(owner_id=owner, assigned_ago=timedelta(hours=1, minutes=30))
    # Twenty refusals in a row, each asking to wait a second (Slack's Retry-After).
    world.slack.fail_next("chat.postMessage", "ratelimited", n=20, status=429, retry_after=1)
    services = []
    for n in (1, 2):
        own = {**env, "SLA_BEAT_SCHEDULE": str(tmp_path / f"celerybeat-schedule-{n}")}
        for name in ("beat", "worker", "worker-sync"):
            service = Service(name, own, tmp_path)  # the compose service's command
            service.log = tmp_path / f"{name}-{n}.log"
            services.append(service)
    try:
        for service in services:
            service.start()
        wait_until(
            "every rep has a DM",
            lambda: len({m.user_id for m in world.slack.messages}) == REPS,
            timeout=120,
        )
        delivered = "Task worker.tasks.deliver["
        counts = [s.count(delivered) for s in services]
        wait_until(
            "more deliver passes on both workers",
            lambda: sum(s.count(delivered) for s in services) >= sum(counts) + 20,
        )
        posts = [r for r in world.slack.requests if r.path == "/api/chat.postMessage"]
        assert len(posts) >= REPS + 20  # the storm was met: every refusal was tried again
        sent = sorted(m.user_id for m in world.slack.messages)
        assert sent == sorted(f"U0REP{rep}" for rep in range(REPS)), sent
    finally:
        for service in services:
            service.kill(signal.SIGTERM)
