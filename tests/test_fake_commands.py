"""``sla-worker fake-slack`` / ``fake-hubspot`` as a person points a worker at them (issue 19):
they print the URL and token to use, and the fake Slack shows each message it receives, on its
console and at ``GET /_messages``."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterator

import pytest
import requests
from slack_sdk import WebClient

from tests.test_cli import SCRIPT


class Console:
    """A command's output, a line at a time, waited for at most ``timeout`` seconds: a line
    that never comes fails the test instead of hanging the suite."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: [self._lines.put(x) for x in stdout], daemon=True).start()

    def line(self, timeout: float = 15) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s") from None


@pytest.fixture
def fake_slack() -> Iterator[Console]:
    process = subprocess.Popen(
        [str(SCRIPT), "fake-slack", "--seed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    yield Console(process)
    process.kill()
    process.wait(timeout=10)


def test_fake_slack_prints_what_to_set_and_each_message_it_receives(fake_slack: Console) -> None:
    first = fake_slack.line()
    url = re.search(r"SLACK_API_URL=(\S+)", first)
    token = re.search(r"SLACK_BOT_TOKEN=(\S+?)\)", first)
    listing = re.search(r"messages received: (\S+)", first)
    assert url and token and listing, first
    client = WebClient(token=token.group(1), base_url=url.group(1))
    # At once, as a person pasting the line would not: the echo must be in place already.
    client.chat_postMessage(
        channel="#sales-us-escalations", text="Hello from a worker\nsecond line"
    )
    assert fake_slack.line().strip() == "#sales-us-escalations: Hello from a worker"
    messages = requests.get(listing.group(1), timeout=10).json()["messages"]
    assert [(m["to"], m["text"]) for m in messages] == [
        ("#sales-us-escalations", "Hello from a worker\nsecond line")
    ]


def test_fake_hubspot_prints_what_to_set() -> None:
    process = subprocess.Popen(
        [str(SCRIPT), "fake-hubspot", "--seed"], stdout=subprocess.PIPE, text=True
    )
    try:
        first = Console(process).line()
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
