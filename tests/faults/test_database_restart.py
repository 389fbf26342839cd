"""PostgreSQL restarted under a running Celery worker and beat (issue 14): the worker survives,
its connection pool reconnects, and the work goes on — nothing lost, nothing sent twice. The
test runs its own PostgreSQL cluster on a free port (initdb in a temporary directory), so the
shared server is never stopped. ``-m immediate`` is the harshest stop: no checkpoint, every
connection cut mid-statement, crash recovery at the next start."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.e2e.world import RealClock, World, make_world
from tests.faults.restarts import survives_restarts
from tests.faults.test_broker_restart import _free_port
from tests.test_integration_celery import Service, services_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class OwnPostgres:
    """A throw-away cluster: trust auth, loopback only, a free port."""

    def __init__(self, bindir: Path, workdir: Path) -> None:
        self.bindir = bindir
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = _free_port()
        # PostgreSQL refuses to run as root: run it as the postgres user when we are root.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(workdir, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as, str(self.bindir / tool), *args], capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    def _ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "-l", str(self.workdir / "postgres.log"), "start")

    def restart(self) -> None:
        self._ctl("-m", "immediate", "stop")
        self.start()

    def stop(self) -> None:
        self._ctl("-m", "immediate", "stop")


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    bindir = _postgres_bin()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        if IN_CI:
            pytest.fail("PostgreSQL's server binaries are not installed; under CI=true a failure")
        pytest.skip("PostgreSQL's server binaries are not installed")
    # Not under pytest's tmp_path: the postgres user must reach the directory (0700 by root).
    workdir = Path(tempfile.mkdtemp(prefix="sla-worker-pg-"))
    try:
        postgres = OwnPostgres(bindir, workdir)
        postgres.start()
        try:
            yield postgres
        finally:
            postgres.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def world(tmp_path: Path, own_postgres: OwnPostgres) -> Iterator[World]:
    yield from make_world(tmp_path, own_postgres.url, send_resolved=False, clock=RealClock())


def test_a_worker_survives_postgresql_restarts_and_goes_on_delivering(
    world: World, own_postgres: OwnPostgres, redis_url: str, tmp_path: Path
) -> None:
    env = services_env(world, redis_url, tmp_path)

    def restart(worker: Service) -> None:
        own_postgres.restart()
        before = worker.count("succeeded in")
        wait_until("tasks succeed again", lambda: worker.count("succeeded in") >= before + 3)

    survives_restarts(world, env, tmp_path, restart)
