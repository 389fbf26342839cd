"""docker-compose.yml cannot rot unseen: every command is one the CLI and Celery accept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.compose import command, services
from worker.cli import _parser

BIN = Path(sys.executable).parent


def test_compose_has_the_production_services() -> None:
    assert {"redis", "postgres", "migrate", "worker", "worker-sync", "beat"} <= set(services())


def test_every_queue_is_consumed_by_a_worker_and_sync_has_its_own() -> None:
    from worker.celery_app import QUEUES

    consumed: dict[str, set[str]] = {}
    for name in ("worker", "worker-sync"):
        cmd = command(name)
        consumed[name] = set(cmd[cmd.index("-Q") + 1].split(","))
    assert consumed["worker-sync"] == {"sync"}
    assert "sync" not in consumed["worker"]  # a long sync never holds back delivery
    assert consumed["worker"] | consumed["worker-sync"] == set(QUEUES)


def test_exactly_one_beat_is_configured() -> None:
    beats = [name for name in services() if "beat" in services()[name].get("command", [])]
    assert beats == ["beat"]
    assert services()["beat"]["deploy"]["replicas"] == 1


def test_the_migration_command_is_a_cli_command() -> None:
    cmd = command("migrate")
    assert cmd[0] == "sla-worker"
    args = _parser().parse_args(cmd[1:])
    assert (args.command, args.db_command) == ("db", "upgrade")


def test_celery_accepts_the_worker_and_beat_command_lines(tmp_path: Path) -> None:
    env = {"SLA_CONFIG": str(Path("config/sla.yaml").resolve()), "PATH": str(BIN)}
    for service in ("worker", "worker-sync", "beat"):
        cmd = command(service)
        assert cmd[:3] == ["celery", "-A", "worker.celery_app"]
        # --help after the full command line makes celery parse every option and exit 0.
        done = subprocess.run(
            [str(BIN / "celery"), *cmd[1:], "--help"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr


def test_every_service_built_from_this_repo_reads_only_the_documented_environment() -> None:
    documented = {
        "SLA_CONFIG",
        "DATABASE_URL",
        "DATABASE_PASSWORD",
        "BROKER_URL",
        "SLACK_BOT_TOKEN",
        "SLACK_API_URL",
        "HUBSPOT_TOKEN",
        "HUBSPOT_BASE_URL",
        "SLA_BEAT_SCHEDULE",
        "METRICS_PORT",
        "PROMETHEUS_MULTIPROC_DIR",
        "LOG_FORMAT",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "DASHBOARD_TOKEN",
    }
    for name, service in services().items():
        if "build" in service:
            assert set(service["environment"]) <= documented, name


def test_the_worker_healthcheck_is_a_cli_command() -> None:
    test = services()["worker"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "sla-worker"]
    assert _parser().parse_args(test[2:]).command == "health"


def test_the_beat_healthcheck_is_a_cli_command() -> None:
    test = services()["beat"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "sla-worker"]
    args = _parser().parse_args(test[2:])
    assert args.command == "health" and args.beat


def test_the_stack_is_hardened() -> None:
    every = services()
    built = {name for name, s in every.items() if "build" in s}
    assert built == {"migrate", "worker", "worker-sync", "beat", "web"}
    assert len({every[name]["image"] for name in built}) == 1  # one image, named
    for name, service in every.items():
        assert service.get("logging", {}).get("options", {}).get("max-size"), name
        if name != "migrate":
            assert service.get("restart") == "unless-stopped", name
    for name in ("worker", "beat", "web"):
        assert every[name]["healthcheck"].get("start_period"), name
    url = every["worker"]["environment"]["DATABASE_URL"]
    assert "@" in url and ":" not in url.split("//", 1)[1].split("@", 1)[0]  # no password in it
    ignored = (Path(__file__).resolve().parent.parent / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


def test_the_web_service_serves_slack_on_the_host_s_loopback_and_checks_its_health() -> None:
    from worker.settings import DEFAULT_WEB_PORT

    web = services()["web"]
    args = _parser().parse_args(command("web")[1:])
    assert command("web")[0] == "sla-worker" and args.command == "web"
    assert args.host == "0.0.0.0" and args.port is None  # WEB_PORT, default 3000, inside
    assert web["ports"] == [f"127.0.0.1:{DEFAULT_WEB_PORT}:{DEFAULT_WEB_PORT}"]
    probe = " ".join(web["healthcheck"]["test"])
    assert f"http://127.0.0.1:{DEFAULT_WEB_PORT}/healthz" in probe
    assert web["environment"]["SLACK_SIGNING_SECRET"].startswith("${SLACK_SIGNING_SECRET")
    # Socket Mode when .env sets it (no public URL); empty by default: HTTP, as above.
    assert web["environment"]["SLACK_APP_TOKEN"] == "${SLACK_APP_TOKEN:-}"
    assert web["profiles"] == ["web"]  # opt-in: the rest of the stack runs without a Slack app
