"""``sla-worker fake-slack`` / ``fake-hubspot`` as a person points a worker at them (issue 19):
they print the URL and token to use, and the fake Slack shows each message it receives, on its
console and at ``GET /_messages``."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest
import requests
from slack_sdk import WebClient

from tests.test_cli import SCRIPT


@pytest.fixture
def fake_slack() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [str(SCRIPT), "fake-slack", "--seed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    yield process
    process.kill()
    process.wait(timeout=10)


def test_fake_slack_prints_what_to_set_and_each_message_it_receives(
    fake_slack: subprocess.Popen[str],
) -> None:
    assert fake_slack.stdout is not None
    first = fake_slack.stdout.readline()
    url = re.search(r"SLACK_API_URL=(\S+)", first)
    token = re.search(r"SLACK_BOT_TOKEN=(\S+?)\)", first)
    listing = re.search(r"messages received: (\S+)", first)
    assert url and token and listing, first
    client = WebClient(token=token.group(1), base_url=url.group(1))
    client.chat_postMessage(
        channel="#sales-us-escalations", text="Hello from a worker\nsecond line"
    )
    assert fake_slack.stdout.readline().strip() == "#sales-us-escalations: Hello from a worker"
    messages = requests.get(listing.group(1), timeout=10).json()["messages"]
    assert [(m["to"], m["text"]) for m in messages] == [
        ("#sales-us-escalations", "Hello from a worker\nsecond line")
    ]


def test_fake_hubspot_prints_what_to_set() -> None:
    process = subprocess.Popen(
        [str(SCRIPT), "fake-hubspot", "--seed"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        base = re.search(r"HUBSPOT_BASE_URL=(\S+)", first)
        token = re.search(r"HUBSPOT_TOKEN=(\S+?)\)", first)
        assert base and token, first
        owners = requests.get(
            f"{base.group(1)}/crm/v3/owners",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            timeout=10,
        )
        assert owners.status_code == 200 and owners.json()["results"]
    finally:
        process.kill()
        process.wait(timeout=10)
