"""SlackClient against the fake Slack over loopback: what it sends and how it maps failures."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.e2e.slack_fixtures import EpochClock, running_fake_slack
from worker.errors import AuthError, PermanentError, TransientError
from worker.fakes.slack import FakeSlack
from worker.slack import SentMessage, SlackClient, SlackUser

TOKEN = "xoxb-0000-secret-never-printed"


@pytest.fixture
def clock() -> EpochClock:
    return EpochClock()


@pytest.fixture
def fake(clock: EpochClock) -> Iterator[FakeSlack]:
    yield from running_fake_slack(TOKEN, clock)


@pytest.fixture
def client(fake: FakeSlack) -> SlackClient:
    return SlackClient(TOKEN, fake.api_url)


def section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# -- what it does ----------------------------------------------------------------------------------
def test_it_finds_a_user_by_email(client: SlackClient) -> None:
    user = client.lookup_user_by_email("lena@example.com")
    assert user == SlackUser(id="U0LENA", name="Lena Fischer", tz="Europe/Berlin", deleted=False)


def test_it_returns_none_for_unknown_email(client: SlackClient) -> None:
    assert client.lookup_user_by_email("nobody@example.com") is None


def test_it_returns_none_for_a_deactivated_user(client: SlackClient) -> None:
    assert client.lookup_user_by_email("gone@example.com") is None


def test_it_posts_a_dm_to_a_user_id(fake: FakeSlack, client: SlackClient) -> None:
    sent = client.post_message("U0LENA", "Your lead is due", blocks=[section("*Due*")])
    assert sent.channel.startswith("D")  # the DM's id, which chat.update needs
    [posted] = fake.dms_to("U0LENA")
    assert posted == fake.messages[0]
    assert (posted.channel, posted.ts) == (sent.channel, sent.ts)
    assert (posted.text, posted.blocks) == ("Your lead is due", [section("*Due*")])


def test_it_posts_to_a_channel_by_name(fake: FakeSlack, client: SlackClient) -> None:
    sent = client.post_message("#sales-escalations", "Overdue leads")
    assert sent.channel == "C0ESC"
    assert [m.text for m in fake.messages_in("#sales-escalations")] == ["Overdue leads"]


def test_it_replies_in_a_thread(fake: FakeSlack, client: SlackClient) -> None:
    parent = client.post_message("C0ESC", "Digest")
    reply = client.post_message("C0ESC", "Details", thread_ts=parent.ts)
    posted = fake.messages_in("C0ESC")[1]
    assert (posted.ts, posted.thread_ts, posted.orphan) == (reply.ts, parent.ts, False)


def test_it_updates_a_message(fake: FakeSlack, client: SlackClient) -> None:
    sent = client.post_message("U0LENA", "Breach")
    client.update_message(sent.channel, sent.ts, "Resolved", blocks=[section("Resolved")])
    [posted] = fake.dms_to("U0LENA")
    assert (posted.text, posted.blocks) == ("Resolved", [section("Resolved")])
    assert len(fake.updates) == 1


def test_it_checks_the_token(fake: FakeSlack, client: SlackClient) -> None:
    client.check_auth()
    with pytest.raises(AuthError) as caught:
        SlackClient("xoxb-wrong", fake.api_url).check_auth()
    assert caught.value.code == "invalid_auth"


def test_it_returns_a_sent_message_value(client: SlackClient) -> None:
    sent = client.post_message("C0ESC", "x")
    assert isinstance(sent, SentMessage)
    assert float(sent.ts) > 0


# -- rate limits -----------------------------------------------------------------------------------
def test_it_maps_ratelimited_to_transient_with_retry_after(
    fake: FakeSlack, client: SlackClient
) -> None:
    fake.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=3)
    with pytest.raises(TransientError) as caught:
        client.post_message("C0ESC", "x")
    assert caught.value.retry_after == timedelta(seconds=3)
    # Handed back at once, not slept on: the fake saw a single call.
    assert len([r for r in fake.requests if r.path.endswith("chat.postMessage")]) == 1


def test_it_waits_one_second_when_slack_gives_no_retry_after(
    fake: FakeSlack, client: SlackClient
) -> None:
    fake.fail_next("users.lookupByEmail", "ratelimited", status=429)
    with pytest.raises(TransientError) as caught:
        client.lookup_user_by_email("lena@example.com")
    assert caught.value.retry_after == timedelta(seconds=1)


def test_it_maps_the_channel_pace_to_transient(clock: EpochClock) -> None:
    with FakeSlack(TOKEN, clock=clock, channel_rate_per_s=1.0) as fake:
        assert isinstance(fake, FakeSlack)
        fake.add_channel("C0ESC", "sales-escalations")
        client = SlackClient(TOKEN, fake.api_url)
        client.post_message("C0ESC", "first")
        with pytest.raises(TransientError) as caught:
            client.post_message("C0ESC", "second")
        assert caught.value.retry_after == timedelta(seconds=1)
        clock.now += caught.value.retry_after.total_seconds()
        client.post_message("C0ESC", "second")
        assert [m.text for m in fake.messages] == ["first", "second"]


# -- server trouble --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error", "raw_body"),
    [
        (500, "internal_error", None),  # HTML error page
        (503, "service_unavailable", None),
        (200, "internal_error", None),  # Slack's own JSON, HTTP 200
        (200, "fatal_error", None),
        (200, "service_unavailable", None),
        (200, "request_timeout", None),
        (200, "", b"<html>maintenance</html>"),  # non-JSON with 200
        (200, "", b'{"ok": tr'),  # cut-off JSON
        (404, "", b"<html>not found</html>"),  # a proxy in the way
    ],
)
def test_it_maps_server_trouble_to_transient(
    fake: FakeSlack, client: SlackClient, status: int, error: str, raw_body: bytes | None
) -> None:
    fake.fail_next("chat.postMessage", error, status=status, raw_body=raw_body)
    with pytest.raises(TransientError) as caught:
        client.post_message("C0ESC", "x")
    assert caught.value.retry_after is None


def test_it_maps_a_refused_connection_to_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens there now; slack_sdk retries the connection once, then gives up.
    client = SlackClient(TOKEN, f"http://127.0.0.1:{port}/api/")
    with pytest.raises(TransientError):
        client.post_message("C0ESC", "x")


def test_it_maps_a_timeout_to_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the connection, never answers
        port = silent.getsockname()[1]
        client = SlackClient(TOKEN, f"http://127.0.0.1:{port}/api/", timeout=1)
        with pytest.raises(TransientError):
            client.check_auth()


# -- credentials -----------------------------------------------------------------------------------
def test_revoked_token_is_an_auth_error(fake: FakeSlack, client: SlackClient) -> None:
    client.post_message("C0ESC", "before")
    fake.revoke_token()
    with pytest.raises(AuthError) as caught:
        client.post_message("C0ESC", "after")
    assert caught.value.code == "token_revoked"
    assert isinstance(caught.value, PermanentError)  # the stages' "don't retry blindly" branch


@pytest.mark.parametrize(
    "code",
    [
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "org_login_required",
        "ekm_access_denied",
    ],
)
def test_it_maps_credential_errors_to_auth_errors(
    fake: FakeSlack, client: SlackClient, code: str
) -> None:
    fake.fail_next("users.lookupByEmail", code)
    with pytest.raises(AuthError) as caught:
        client.lookup_user_by_email("lena@example.com")
    assert caught.value.code == code


# -- rejected content ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "text", "blocks", "code"),
    [
        ("C0NOPE", "x", None, "channel_not_found"),
        ("C0OUT", "x", None, "not_in_channel"),
        ("C0ESC", "x" * 40_001, None, "msg_too_long"),
        ("C0ESC", "x", [section("s" * 3_001)], "invalid_blocks"),
        ("C0ESC", "x", [section("s" * 3_000)] * 4 + [section("s")], "msg_blocks_too_long"),
    ],
)
def test_it_maps_rejected_posts_to_permanent_errors(
    fake: FakeSlack,
    client: SlackClient,
    channel: str,
    text: str,
    blocks: list[dict[str, object]] | None,
    code: str,
) -> None:
    with pytest.raises(PermanentError) as caught:
        client.post_message(channel, text, blocks=blocks)
    assert not isinstance(caught.value, AuthError)
    assert caught.value.code == code
    assert fake.messages == []


def test_users_not_found_outside_lookup_is_permanent(fake: FakeSlack, client: SlackClient) -> None:
    fake.fail_next("chat.postMessage", "users_not_found")
    with pytest.raises(PermanentError) as caught:
        client.post_message("C0ESC", "x")
    assert caught.value.code == "users_not_found"


def test_it_maps_a_missing_message_to_permanent(client: SlackClient) -> None:
    sent = client.post_message("U0LENA", "x")
    with pytest.raises(PermanentError) as caught:
        client.update_message(sent.channel, "1.000001", "y")
    assert caught.value.code == "message_not_found"


# -- secrecy ---------------------------------------------------------------------------------------
def test_token_never_appears_in_errors(
    fake: FakeSlack, client: SlackClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[Exception] = []
    injections = [
        ("chat.postMessage", "ratelimited", 429),
        ("chat.postMessage", "internal_error", 500),
        ("chat.postMessage", "invalid_auth", 200),
        ("chat.postMessage", "channel_not_found", 200),
    ]
    for method, error, status in injections:
        fake.fail_next(method, error, status=status)
        with pytest.raises(Exception) as caught:
            client.post_message("C0ESC", "x")
        failures.append(caught.value)
    with pytest.raises(TransientError) as refused:
        SlackClient(TOKEN, "http://127.0.0.1:9/api/").check_auth()
    failures.append(refused.value)
    for failure in failures:
        for shown in (str(failure), repr(failure), repr(failure.__cause__), repr(failure.args)):
            assert TOKEN not in shown
    assert TOKEN not in repr(client)
    assert TOKEN not in caplog.text
