"""Only Slack gets through ``sla-worker web``: a request must carry Slack's signature of its body
with the app's signing secret and a timestamp at most five minutes off (bolt's own check). Every
other request gets 401, reaches no listener and changes nothing: no task, no answer, no audit
row, not even a question to Slack about who sent it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tests.e2e.web import Web, serving_web
from tests.e2e.world import World, make_world


@pytest.fixture
def world(tmp_path: Path, sqlite_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, sqlite_url)


@pytest.fixture
def web(world: World) -> Iterator[Web]:
    world.add_rep("101", "Lena Fischer", "U0LENA")
    with serving_web(world) as web:
        yield web


def nothing_happened(web: Web) -> bool:
    """Nothing came of the requests so far: checked after a signed command sent last was
    answered, so a refused request that had slipped through would have been handled too."""
    control = web.post("U0LENA", "help")
    assert control.status == 200
    web.world.slack.await_response(control.response_url)
    slack = web.world.slack
    asked_slack = [r for r in slack.requests if r.path == "/api/users.info"]
    answered = [r for r in slack.requests if r.path.startswith("/_respond/")]
    audited = [a.action for a in web.actions()]
    return len(asked_slack) <= 1 and len(answered) == 1 and audited == ["/sla help"]


def test_a_signed_command_is_acknowledged_at_once_and_answered_at_its_response_url(
    web: Web,
) -> None:
    answer = web.post("U0LENA", "mine")
    assert (answer.status, answer.body) == (200, "")  # the acknowledgement: empty, at once
    response = web.world.slack.await_response(answer.response_url)
    assert response["response_type"] == "ephemeral"
    assert "You own no open leads" in response["text"]
    assert [a.action for a in web.actions()] == ["/sla mine"]


def test_a_badly_signed_command_gets_401_and_changes_nothing(web: Web) -> None:
    answer = web.post("U0LENA", "mine", bad_signature=True)
    assert answer.status == 401
    assert nothing_happened(web)


@pytest.mark.parametrize(
    "age",
    [
        timedelta(minutes=5, seconds=30),  # a replay of a request Slack sent earlier
        timedelta(hours=24),
        -timedelta(minutes=6),  # dated in the future: no less suspect
    ],
)
def test_a_command_signed_more_than_five_minutes_away_gets_401_and_changes_nothing(
    web: Web, age: timedelta
) -> None:
    assert web.post("U0LENA", "mine", age=age).status == 401
    assert nothing_happened(web)


def test_a_command_signed_four_minutes_ago_is_still_taken(web: Web) -> None:
    # Slack's clock and ours may differ by a little: the window is five minutes.
    answer = web.post("U0LENA", "mine", age=timedelta(minutes=4))
    assert answer.status == 200
    assert web.world.slack.await_response(answer.response_url)


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no signature at all
        {"X-Slack-Request-Timestamp": "not-a-time", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=00"},
    ],
)
def test_a_request_without_a_readable_signature_gets_401(web: Web, headers: dict[str, str]) -> None:
    body = "command=%2Fsla&text=mine&user_id=U0LENA&response_url=http%3A%2F%2F127.0.0.1%3A9%2F"
    headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    answer = requests.post(web.url, data=body, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert nothing_happened(web)


def test_an_interaction_signed_by_slack_passes_the_check_and_a_forged_one_does_not(
    web: Web,
) -> None:
    # Bolt answers a verified payload of a button it does not handle 404, and an unverified
    # one 401 before looking at what it is, even the Acknowledge button's.
    def payload(action_id: str) -> dict[str, object]:
        return {
            "type": "block_actions",
            "user": {"id": "U0LENA"},
            "actions": [{"action_id": action_id, "value": "1001"}],
        }

    slack = web.world.slack
    assert slack.post_interaction(web.url, payload("no_such_button")).status == 404
    acknowledge = payload("acknowledge")
    assert slack.post_interaction(web.url, acknowledge, bad_signature=True).status == 401
    assert slack.post_interaction(web.url, acknowledge, age=timedelta(minutes=10)).status == 401
    assert nothing_happened(web)


def test_health_answers_ok_and_other_paths_are_not_found(web: Web) -> None:
    base = web.server.base_url
    health = requests.get(f"{base}/healthz", timeout=10)
    assert (health.status_code, health.text) == (200, "ok\n")
    assert requests.get(f"{base}/slack/events", timeout=10).status_code == 404
    assert requests.post(f"{base}/other", data="x", timeout=10).status_code == 404


def test_a_refused_request_is_logged_in_one_line_without_its_body(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    web.post("U0LENA", "mine", age=timedelta(minutes=10))  # a replay: a real response_url
    lines = [r.getMessage() for r in caplog.records]
    assert any("refused POST /slack/events from 127.0.0.1" in line for line in lines), lines
    assert not any("_respond" in line or "verification-token" in line for line in lines)
