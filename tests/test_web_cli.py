"""``sla-worker web`` as an admin runs it: it refuses to start without what it needs, naming it,
and once started it takes Slack's commands and queues them on the broker for the workers."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.e2e.world import World, make_world
from tests.test_cli import SCRIPT, run
from worker.celery_app import make_app
from worker.fakes.slack import FakeSlack
from worker.pipeline import slack_commands
from worker.settings import Settings


def test_without_a_signing_secret_it_exits_2_naming_the_variable() -> None:
    done = run("web", env={"SLACK_SIGNING_SECRET": "", "SLACK_BOT_TOKEN": "xoxb-x"})
    assert done.returncode == 2
    assert "SLACK_SIGNING_SECRET is not set" in done.stderr


def test_a_web_port_that_is_not_a_port_exits_2_naming_the_variable() -> None:
    done = run("web", env={"WEB_PORT": "http"})
    assert done.returncode == 2
    assert 'WEB_PORT: "http" is not a port number' in done.stderr


def test_a_bot_token_slack_refuses_stops_it_at_start() -> None:
    with FakeSlack("xoxb-right", signing_secret="s") as slack:
        done = run(
            "web",
            env={
                "SLACK_SIGNING_SECRET": "s",
                "SLACK_BOT_TOKEN": "xoxb-wrong",
                "SLACK_API_URL": slack.api_url,
            },
        )
    assert done.returncode == 1
    assert "Slack did not accept the bot token at start" in done.stderr
    assert "xoxb-wrong" not in done.stderr + done.stdout


@pytest.fixture
def world(tmp_path: Path, sqlite_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, sqlite_url)


@pytest.mark.slow
def test_a_command_is_queued_for_the_workers_and_answered_by_the_task(
    world: World, tmp_path: Path
) -> None:
    world.add_rep("101", "Lena Fischer", "U0LENA")
    env = {**world.env(), "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"}
    process = subprocess.Popen(
        [str(SCRIPT), "web", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"Slack request URL (http://127\.0\.0\.1:\d+/slack/events)", first)
        assert found, first
        url = found.group(1)
        assert requests.get(url.replace("/slack/events", "/healthz"), timeout=10).text == "ok\n"
        assert world.slack.post_command(url, "U0LENA", "mine", bad_signature=True).status == 401
        answer = world.slack.post_command(url, "U0LENA", "mine")
        assert answer.status == 200
        # What a worker would take from the deliver queue (queued just after the 200).
        celery = make_app(Settings.from_env(env))
        with celery.connection_for_read() as connection:
            queue = connection.SimpleQueue("deliver")
            message = queue.get(timeout=10)
            message.ack()
            queue.close()
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert message.headers["task"] == "worker.tasks.slack_command"
    expires = datetime.fromisoformat(message.headers["expires"])
    assert timedelta(minutes=25) < expires - datetime.now(UTC) <= timedelta(minutes=30)
    _, kwargs, _ = message.decode()
    assert kwargs == {
        "user_id": "U0LENA",
        "text": "mine",
        "response_url": answer.response_url,
        "command": "/sla",
    }
    # ... and what the task does with them (without a worker process: the same function).
    with world.context() as ctx:
        slack_commands.run(ctx, ctx.clock(), slack_commands.SlashCommand(**kwargs))
    response = world.slack.await_response(answer.response_url)
    assert response["response_type"] == "ephemeral"
    assert "You own no open leads (as lena@example.com" in response["text"]


def _serve(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPT), "web", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )


def test_the_dashboard_is_served_to_this_machine_and_off_when_exposed_without_a_token(
    world: World,
) -> None:
    with world.context():
        pass  # the store exists (a worker made it)
    process = _serve(world.env())
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the Slack request URL
        found = re.search(
            r"dashboard (http://127\.0\.0\.1:\d+/dashboard)", process.stdout.readline()
        )
        assert found
        page = requests.get(found.group(1), timeout=60)
        assert page.status_code == 200 and "SLA review: week" in page.text
    finally:
        process.terminate()
        process.wait(timeout=10)

    exposed = _serve({**world.env(), "WEB_HOST": "0.0.0.0"})
    try:
        assert exposed.stdout is not None
        said = exposed.stdout.readline() + exposed.stdout.readline()
        assert "no dashboard: it listens on 0.0.0.0 and DASHBOARD_TOKEN is not set" in said
    finally:
        exposed.terminate()
        exposed.wait(timeout=10)
