"""``sla-worker web`` over Socket Mode (issue 17: for workspaces that cannot expose a URL): the
worker opens a WebSocket to Slack with the app-level token and the same bolt app takes the
/sla command and the buttons over it, acknowledges each envelope and hands the work to the
same Celery tasks. Slack here is the fake, speaking Socket Mode to slack_sdk's real built-in
client; the workers are eager Celery in-process, or a real broker for the CLI."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select

from tests.e2e.web import eager_celery
from tests.e2e.world import Clock, World, make_world
from tests.test_cli import SCRIPT, run
from tests.test_web_snooze import MAX_3D, TUESDAY_1030
from worker import tasks
from worker.celery_app import make_app
from worker.fakes.slack import FakeSlack, PostedMessage
from worker.pipeline.context import Context
from worker.pipeline.stages import run_once
from worker.settings import Settings
from worker.store.models import Snooze
from worker.web.bolt_app import make_bolt_app
from worker.web.handoff import submit_action, submit_command
from worker.web.server import WebServer
from worker.web.socket_mode import SocketModeConnection, make_health_app

USAGE = "`/sla explain <lead id, e-mail or CRM link>`"


def socket_env(world: World) -> dict[str, str]:
    """The world's environment for Socket Mode: the app token, and no signing secret at all."""
    return {**world.env(), "SLACK_APP_TOKEN": world.slack.app_token, "SLACK_SIGNING_SECRET": ""}


@dataclass
class SocketWeb:
    world: World
    ctx: Context
    connection: SocketModeConnection


@contextmanager
def socket_web(world: World) -> Iterator[SocketWeb]:
    """``sla-worker web --socket-mode`` in this process, the tasks eager on the world."""
    with world.context() as ctx, tasks.bound_to(ctx), eager_celery():
        settings = Settings.from_env(socket_env(world))
        bolt = make_bolt_app(settings, submit_command, submit_action, socket_mode=True)
        connection = SocketModeConnection(bolt, settings)
        connection.open()
        try:
            world.slack.await_socket()
            yield SocketWeb(world, ctx, connection)
        finally:
            connection.close()


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    for world in make_world(tmp_path, database_url, clock=Clock(TUESDAY_1030), config=MAX_3D):
        world.add_rep("101", "Lena Fischer", "U0LENA")
        yield world


def test_a_command_over_the_socket_is_acknowledged_and_answered_by_the_task(world: World) -> None:
    with socket_web(world):
        answer = world.slack.socket_command("U0LENA", "help")
        assert answer.acknowledged and answer.payload is None  # an empty ack, within 3 s
        response = world.slack.await_response(answer.response_url)
    assert response["response_type"] == "ephemeral"
    assert USAGE in response["text"]


def test_a_button_click_over_the_socket_snoozes_and_updates_the_reminder(world: World) -> None:
    lead_id = world.add_lead(owner_id="101", assigned_ago=timedelta(hours=1, minutes=30))
    reference = f"{lead_id}|first_touch|{(TUESDAY_1030 - timedelta(minutes=30)).isoformat()}"
    with socket_web(world) as web:
        run_once(web.ctx)  # Lena hears of the breach, with the buttons
        (reminder,) = world.slack.dms_to("U0LENA")
        answer = world.slack.socket_click("U0LENA", reminder, "snooze_1h", reference)
        assert answer.acknowledged
        update = world.slack.await_update(reminder.ts)
        with web.ctx.sessions() as session:
            snoozes = list(session.scalars(select(Snooze)))
    assert ":zzz: Snoozed until Tue 24 Nov 11:30 CET by Lena Fischer." in str(update.blocks)
    assert [s.by_email for s in snoozes] == ["lena@example.com"]


def test_when_slack_recycles_the_connection_requests_keep_arriving(world: World) -> None:
    with socket_web(world) as web:
        world.slack.socket_disconnect("refresh_requested")
        world.slack.await_socket(2)  # the client asked apps.connections.open for a new URL
        # slack_sdk's built-in client starts reading a new connection once its reader thread
        # leaves the old one (up to its 3 s receive timeout): the first envelope may wait.
        answer = world.slack.socket_command("U0LENA", "help", timeout=15)
        assert answer.acknowledged
        assert USAGE in world.slack.await_response(answer.response_url)["text"]
        assert web.connection.connected


def test_health_says_ok_only_while_connected_and_nothing_else_listens(world: World) -> None:
    with socket_web(world) as web:
        server = WebServer(make_health_app(lambda: web.connection.connected), "127.0.0.1", 0)
        url = server.start()
        try:
            assert requests.get(f"{url}/healthz", timeout=10).text == "ok\n"
            assert requests.post(f"{url}/slack/events", timeout=10).status_code == 404
            web.connection.close()
            assert requests.get(f"{url}/healthz", timeout=10).status_code == 503
        finally:
            server.stop()


# -- the fake's apps.connections.open, through slack_sdk's real client ---------------------------


def test_apps_connections_open_takes_only_the_app_token_in_the_header() -> None:
    with FakeSlack("xoxb-bot") as slack:
        client = WebClient(base_url=slack.api_url)
        url = client.apps_connections_open(app_token=slack.app_token)["url"]
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/link/\?ticket=\w+&app_id=A0SLAAPP", url)
        for token, error in (("xoxb-bot", "not_allowed_token_type"), ("xapp-1-x", "invalid_auth")):
            with pytest.raises(SlackApiError) as refused:
                client.apps_connections_open(app_token=token)
            assert refused.value.response["error"] == error
        in_form = requests.post(
            f"{slack.api_url}apps.connections.open", data={"token": slack.app_token}, timeout=10
        )
        assert in_form.json() == {"ok": False, "error": "invalid_auth"}


def test_the_fake_s_websocket_refuses_what_is_no_handshake_or_no_ticket_of_its_own() -> None:
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    with FakeSlack() as slack:
        assert requests.get(f"{slack.base_url}/link/?ticket=x", timeout=10).status_code == 400
        refused = requests.get(f"{slack.base_url}/link/?ticket=x", headers=upgrade, timeout=10)
        assert refused.status_code == 401
        with pytest.raises(AssertionError, match="no app is connected"):
            slack.socket_command("U0LENA", "help")


# -- the CLI, as an admin runs it -------------------------------------------------------------


def test_socket_mode_without_an_app_token_exits_2_naming_the_variable() -> None:
    done = run("web", "--socket-mode", env={"SLACK_APP_TOKEN": "", "SLACK_BOT_TOKEN": "xoxb-x"})
    assert done.returncode == 2
    assert "SLACK_APP_TOKEN is not set" in done.stderr


def test_a_bot_token_given_as_the_app_token_is_named_without_showing_it() -> None:
    done = run("web", env={"SLACK_APP_TOKEN": "xoxb-123-secret", "SLACK_BOT_TOKEN": "xoxb-x"})
    assert done.returncode == 2
    assert "SLACK_APP_TOKEN is a bot token: Socket Mode needs the app's app-level token" in (
        done.stderr
    )
    assert "secret" not in done.stderr + done.stdout


def test_an_app_token_slack_refuses_stops_it_at_start_with_one_line() -> None:
    with FakeSlack("xoxb-right") as slack:
        done = run(
            "web",
            env={
                "SLACK_APP_TOKEN": "xapp-1-wrong-secret",
                "SLACK_BOT_TOKEN": "xoxb-right",
                "SLACK_API_URL": slack.api_url,
                "SLACK_SIGNING_SECRET": "",  # not needed in Socket Mode
            },
        )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: Slack did not accept SLACK_APP_TOKEN (invalid_auth): it is revoked, mistyped "
        "or another app's; make a new one on the Slack app's Basic Information page, "
        "App-Level Tokens, scope connections:write"
    ]
    assert "Traceback" not in done.stderr and "wrong-secret" not in done.stderr + done.stdout


@pytest.fixture
def cli_world(tmp_path: Path, sqlite_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, sqlite_url)


def _button_message(world: World) -> PostedMessage:
    """A DM with a Snooze button, posted as the worker posts it (through the Web API)."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Maria Lopez* is overdue"}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "snooze_1h",
                    "text": {"type": "plain_text", "text": "Snooze 1h"},
                    "value": "1|first_touch|2026-11-24T09:00:00+00:00",
                }
            ],
        },
    ]
    client = WebClient(token=world.slack.token, base_url=world.slack.api_url)
    client.chat_postMessage(channel="U0LENA", text="Maria Lopez is overdue", blocks=blocks)
    (message,) = world.slack.dms_to("U0LENA")
    return message


@pytest.mark.slow
def test_the_cli_connects_and_queues_a_command_and_a_click_for_the_workers(
    cli_world: World, tmp_path: Path
) -> None:
    world = cli_world
    world.add_rep("101", "Lena Fischer", "U0LENA")
    message = _button_message(world)
    env = {**socket_env(world), "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"}
    process = subprocess.Popen(
        [str(SCRIPT), "web", "--socket-mode", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"over Socket Mode; health (http://127\.0\.0\.1:\d+/healthz)", first)
        assert found, first
        assert requests.get(found.group(1), timeout=10).text == "ok\n"
        world.slack.await_socket()
        command = world.slack.socket_command("U0LENA", "help")
        click = world.slack.socket_click("U0LENA", message, "snooze_1h")
        assert command.acknowledged and click.acknowledged
        celery = make_app(Settings.from_env(env))
        queued: dict[str, dict[str, Any]] = {}
        with celery.connection_for_read() as connection:
            queue = connection.SimpleQueue("deliver")
            for _ in range(2):
                item = queue.get(timeout=10)
                item.ack()
                queued[item.headers["task"]] = item.decode()[1]
            queue.close()
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert queued["worker.tasks.slack_command"] == {
        "user_id": "U0LENA",
        "text": "help",
        "response_url": command.response_url,
        "command": "/sla",
    }
    action = queued["worker.tasks.slack_action"]
    assert (action["user_id"], action["action_id"], action["value"], action["response_url"]) == (
        "U0LENA", "snooze_1h", "1|first_touch|2026-11-24T09:00:00+00:00", click.response_url
    )  # fmt: skip
    assert action["message_ts"] == message.ts
