"""Redis restarted under a running Celery worker (issue 14, row 11): the worker survives,
reconnects and goes on delivering; nothing is lost or sent twice. The test runs its own Redis
on a free port, so the shared one is never stopped."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.e2e.world import RealClock, World, make_world
from tests.faults.restarts import survives_restarts
from tests.test_integration_celery import Service, services_env, wait_until

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OwnRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until("redis answers", self._answers, timeout=20)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; under CI=true this is a failure")
        pytest.skip("redis-server is not installed")
    redis = OwnRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def world(tmp_path: Path, postgres_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, postgres_url, send_resolved=False, clock=RealClock())


def test_a_worker_survives_a_redis_restart_and_goes_on_delivering(
    world: World, own_redis: OwnRedis, tmp_path: Path
) -> None:
    env = services_env(world, f"redis://127.0.0.1:{own_redis.port}/0", tmp_path)

    def restart(worker: Service) -> None:
        reconnected = worker.count("Connected to redis")
        own_redis.stop()
        own_redis.start()
        wait_until(
            "the worker reconnects",
            lambda: worker.count("Connected to redis") > reconnected,
        )

    survives_restarts(world, env, tmp_path, restart)
