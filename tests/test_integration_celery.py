"""The real stack: celery beat + celery worker as subprocesses on Redis, PostgreSQL as the
store, the fakes on loopback, and the exact command lines of docker-compose.yml.

One overdue lead must reach its rep as exactly one DM; a touch added afterwards and further
beats send nothing new; a worker killed with SIGKILL and restarted sends no duplicate.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.compose import command
from tests.e2e.world import RealClock, World, make_world
from worker.store.db import make_engine, make_sessionmaker
from worker.store.models import Finding

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 90) -> None:
    """Poll a condition the system under test must reach (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting until {what}")


class Service:
    """A compose service's command run as a subprocess, logging to a file."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.env = env
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = command(self.name)
        argv = [str(BIN / cmd[0]), *cmd[1:]]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def count(self, text: str) -> int:
        return self.log.read_text(errors="replace").count(text) if self.log.exists() else 0

    def tail(self, lines: int = 40) -> str:
        """The last warnings and errors of its log, to explain a failed wait."""
        if not self.log.exists():
            return f"--- {self.name}: no log"
        text = self.log.read_text(errors="replace").splitlines()
        worth = [line for line in text if "WARNING" in line or "ERROR" in line]
        return f"--- {self.name}\n" + "\n".join(worth[-lines:])


def services_env(
    world: World, broker_url: str, tmp_path: Path, beat_state: str = "celerybeat-schedule"
) -> dict[str, str]:
    """The compose services' environment pointed at this world and broker, with the store
    migrated by the compose file's own ``migrate`` command."""
    env = {
        **os.environ,
        **world.env(),
        "BROKER_URL": broker_url,
        "SLA_BEAT_SCHEDULE": str(tmp_path / beat_state),
    }
    migrate = subprocess.run(
        [str(BIN / command("migrate")[0]), *command("migrate")[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    return env


@pytest.fixture
def world(tmp_path: Path, postgres_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, postgres_url, send_resolved=False, clock=RealClock())


def test_beat_and_worker_send_exactly_one_dm_and_survive_a_kill(
    world: World, redis_url: str, tmp_path: Path
) -> None:
    env = services_env(world, redis_url, tmp_path)
    world.add_rep()
    lead = world.add_lead(assigned_ago=timedelta(hours=2))

    beat = Service("beat", env, tmp_path)
    worker = Service("worker", env, tmp_path)
    syncer = Service("worker-sync", env, tmp_path)  # the sync queue's own worker, as compose
    beat.start()
    worker.start()
    syncer.start()
    delivered = "Task worker.tasks.deliver["
    try:
        wait_until("the rep has a DM", lambda: len(world.slack.dms_to("U0LENA")) >= 1)
        (dm,) = world.slack.dms_to("U0LENA")
        assert "Maria Lopez" in dm.text

        world.add_call(lead)
        engine = make_engine(world.database_url)
        sessions = make_sessionmaker(engine)

        def touched() -> bool:
            with sessions() as session:
                state = session.scalar(
                    select(Finding.state).where(
                        Finding.lead_id == lead, Finding.rule == "first_touch"
                    )
                )
            return state == "met_late"

        wait_until("the late touch is seen", touched)
        engine.dispose()
        seen = worker.count(delivered)
        wait_until("three more deliver passes", lambda: worker.count(delivered) >= seen + 6)
        assert len(world.slack.messages) == 1

        worker.kill(signal.SIGKILL)
        worker.start()
        seen = worker.count(delivered)
        wait_until("the restarted worker delivers", lambda: worker.count(delivered) >= seen + 6)
        assert len(world.slack.messages) == 1
    finally:
        syncer.kill(signal.SIGTERM)
        worker.kill(signal.SIGTERM)
        beat.kill(signal.SIGTERM)
