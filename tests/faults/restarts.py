"""The scenario both restart tests run (Redis, PostgreSQL): a worker and a beat as compose runs
them; the first rep told once; the outside part restarted three times while stages run; the
worker still alive; a rep added afterwards told too — nothing lost, nothing sent twice."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from tests.e2e.world import World
from tests.test_integration_celery import Service, wait_until


def survives_restarts(
    world: World, env: dict[str, str], workdir: Path, restart: Callable[[Service], None]
) -> None:
    """Run the scenario; ``restart(worker)`` restarts the part and waits until the worker
    works again."""
    world.add_rep("101", "Lena Fischer", "U0LENA")
    world.add_lead(owner_id="101", assigned_ago=timedelta(hours=2))
    beat, worker = Service("beat", env, workdir), Service("worker", env, workdir)
    syncer = Service("worker-sync", env, workdir)
    for service in (beat, worker, syncer):
        service.start()
    try:
        wait_until("the first DM", lambda: len(world.slack.dms_to("U0LENA")) == 1)
        for _ in range(3):  # while tasks are queued and in flight (beat ticks every second)
            restart(worker)
        for alive in (worker, syncer):
            assert alive.process is not None and alive.process.poll() is None, alive.log.read_text()
        world.add_rep("102", "Jonas Weber", "U0JONAS")
        world.add_lead(owner_id="102", assigned_ago=timedelta(hours=2), name="Tobias Klein")
        wait_until("a DM after the restarts", lambda: len(world.slack.messages) >= 2)
        seen = worker.count("succeeded in")
        wait_until("more passes", lambda: worker.count("succeeded in") >= seen + 6)
        sent = [m.user_id for m in world.slack.messages]
        assert sorted(sent) == ["U0JONAS", "U0LENA"], sent  # nothing lost, nothing twice
        assert "Unrecoverable error" not in worker.log.read_text()
    except AssertionError as e:
        raise AssertionError(
            "\n".join([str(e), *(s.tail() for s in (beat, worker, syncer))])
        ) from e
    finally:
        for service in (syncer, worker, beat):
            service.kill(signal.SIGTERM)
