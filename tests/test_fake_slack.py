"""The fake Slack behaves like Slack's Web API as slack_sdk sees it: shapes, errors, limits."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.e2e.slack_fixtures import EpochClock, running_fake_slack
from worker.fakes.slack import FakeSlack

TOKEN = "xoxb-test-fake-slack-0001"


@pytest.fixture
def clock() -> EpochClock:
    return EpochClock()


@pytest.fixture
def fake(clock: EpochClock) -> Iterator[FakeSlack]:
    yield from running_fake_slack(TOKEN, clock)


@pytest.fixture
def web(fake: FakeSlack) -> WebClient:
    # No retry handlers: these tests look at single answers.
    return WebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[])


def error_of(method: Callable[..., Any], **args: Any) -> tuple[int, Any]:
    """(HTTP status, body) of a call that Slack answers with ok: false."""
    with pytest.raises(SlackApiError) as caught:
        method(**args)
    return caught.value.response.status_code, caught.value.response.data


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def header(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": "header", "text": {"type": kind, "text": text}}


def fields(count: int, size: int) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * size}] * count}


# -- auth ----------------------------------------------------------------------------------------
def test_fake_answers_not_authed_without_a_token(fake: FakeSlack) -> None:
    anonymous = WebClient(base_url=fake.api_url, retry_handlers=[])
    assert error_of(anonymous.auth_test) == (200, {"ok": False, "error": "not_authed"})


def test_fake_answers_invalid_auth_for_a_wrong_token_with_http_200(fake: FakeSlack) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=fake.api_url, retry_handlers=[])
    assert error_of(wrong.auth_test) == (200, {"ok": False, "error": "invalid_auth"})


def test_fake_answers_token_revoked_after_revocation(fake: FakeSlack, web: WebClient) -> None:
    assert web.auth_test()["user_id"]
    fake.revoke_token()
    assert error_of(web.auth_test)[1]["error"] == "token_revoked"
    assert error_of(web.chat_postMessage, channel="C0ESC", text="x")[1]["error"] == (
        "token_revoked"
    )


def test_fake_auth_test_names_the_bot(web: WebClient) -> None:
    answer = web.auth_test()
    assert answer["ok"] is True
    assert {"user_id", "team_id", "bot_id"} <= set(answer.data)


def test_fake_answers_unknown_method_before_checking_the_token(fake: FakeSlack) -> None:
    anonymous = WebClient(base_url=fake.api_url, retry_handlers=[])
    status, body = error_of(anonymous.api_call, api_method="nothing.here")
    assert (status, body["error"], body["req_method"]) == (404, "unknown_method", "nothing.here")


def test_fake_never_records_or_shows_the_token(fake: FakeSlack, web: WebClient) -> None:
    web.chat_postMessage(channel="C0ESC", text="hello")
    assert all("authorization" not in r.headers for r in fake.requests)
    assert all(TOKEN.encode() not in r.body for r in fake.requests)
    assert TOKEN not in repr(fake)
    assert all(TOKEN not in json.dumps(m.raw) for m in fake.messages)


def test_fake_reads_arguments_from_a_get_query_string(fake: FakeSlack) -> None:
    request = urllib.request.Request(
        f"{fake.api_url}users.lookupByEmail?email=lena%40example.com",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("application/json")
        assert json.load(answer)["user"]["id"] == "U0LENA"


# -- users ---------------------------------------------------------------------------------------
def test_fake_finds_a_user_by_email_with_slacks_shape(web: WebClient) -> None:
    user = web.users_lookupByEmail(email="lena@example.com")["user"]
    assert user["id"] == "U0LENA"
    assert user["tz"] == "Europe/Berlin"
    assert user["tz_offset"] == 3600  # 2023-11-14 is winter time in Berlin
    assert user["profile"]["email"] == "lena@example.com"
    assert user["profile"]["real_name"] == "Lena Fischer"
    assert {"name", "real_name", "tz_label", "deleted", "is_bot"} <= set(user)


def test_fake_hides_unknown_and_deactivated_users_from_lookup(web: WebClient) -> None:
    for email in ("nobody@example.com", "gone@example.com"):
        status, body = error_of(web.users_lookupByEmail, email=email)
        assert (status, body["error"]) == (200, "users_not_found")


def test_fake_users_info_shows_deactivated_users_as_deleted(web: WebClient) -> None:
    assert web.users_info(user="U0GONE")["user"]["deleted"] is True
    assert error_of(web.users_info, user="U0NOPE")[1]["error"] == "user_not_found"


# -- conversations.open ----------------------------------------------------------------------------
def test_fake_opens_the_same_dm_for_the_same_user(web: WebClient) -> None:
    first = web.conversations_open(users="U0LENA")["channel"]["id"]
    second = web.conversations_open(users=["U0LENA"])["channel"]["id"]
    assert first == second
    assert first.startswith("D")


def test_fake_refuses_to_open_dms_it_cannot(web: WebClient) -> None:
    cases = [
        ("U0NOPE", "user_not_found"),
        ("U0GONE", "user_disabled"),  # conversations.open's documented error
        (",".join(f"U{i}" for i in range(9)), "too_many_users"),
    ]
    for users, error in cases:
        assert error_of(web.conversations_open, users=users)[1]["error"] == error


# -- chat.postMessage ------------------------------------------------------------------------------
def test_fake_posts_to_a_user_id_into_their_dm(fake: FakeSlack, web: WebClient) -> None:
    dm = web.conversations_open(users="U0LENA")["channel"]["id"]
    answer = web.chat_postMessage(channel="U0LENA", text="Your lead is due")
    assert answer["channel"] == dm
    assert answer["message"]["text"] == "Your lead is due"
    [posted] = fake.dms_to("U0LENA")
    assert (posted.channel, posted.user_id, posted.channel_name) == (dm, "U0LENA", None)
    assert posted.ts == answer["ts"]


def test_fake_posts_to_a_deactivated_users_id_as_slack_does(
    fake: FakeSlack, web: WebClient
) -> None:
    # slackapi/python-slack-sdk#1156: the post succeeds; the DM history still exists.
    assert web.chat_postMessage(channel="U0GONE", text="hello?")["ok"] is True
    assert len(fake.dms_to("U0GONE")) == 1


def test_fake_resolves_channels_by_id_and_name(fake: FakeSlack, web: WebClient) -> None:
    for target in ("C0ESC", "#sales-escalations", "sales-escalations"):
        assert web.chat_postMessage(channel=target, text=target)["channel"] == "C0ESC"
    assert [m.text for m in fake.messages_in("#sales-escalations")] == [
        "C0ESC",
        "#sales-escalations",
        "sales-escalations",
    ]
    assert fake.messages_in("C0ESC") == fake.messages_in("sales-escalations")


def test_fake_rejects_posts_where_the_bot_cannot_post(fake: FakeSlack, web: WebClient) -> None:
    cases = [
        ("C0NOPE", "channel_not_found"),
        ("#nowhere", "channel_not_found"),
        ("U0NOPE", "channel_not_found"),
        ("C0OUT", "not_in_channel"),
        ("C0OLD", "is_archived"),
    ]
    for channel, error in cases:
        status, body = error_of(web.chat_postMessage, channel=channel, text="x")
        assert (status, body["error"]) == (200, error), channel
    assert fake.messages == []


def test_fake_gives_unique_increasing_ts_values(web: WebClient) -> None:
    stamps = [web.chat_postMessage(channel="C0ESC", text=str(i))["ts"] for i in range(3)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 3
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)  # "1700000000.000001" style


def test_fake_replies_in_threads_and_marks_unknown_parents(fake: FakeSlack, web: WebClient) -> None:
    parent = web.chat_postMessage(channel="C0ESC", text="parent")["ts"]
    web.chat_postMessage(channel="C0ESC", text="reply", thread_ts=parent)
    # Slack answers ok for a thread_ts that names no message (python-slack-sdk#840).
    web.chat_postMessage(channel="C0ESC", text="lost", thread_ts="1234567890.000001")
    reply, lost = fake.messages[1:]
    assert (reply.thread_ts, reply.orphan) == (parent, False)
    assert lost.orphan is True


def test_fake_accepts_blocks_as_a_form_encoded_json_string(fake: FakeSlack, web: WebClient) -> None:
    blocks = [section("*hello*")]
    web.api_call(
        "chat.postMessage",
        params={"channel": "C0ESC", "text": "hello", "blocks": json.dumps(blocks)},
    )
    assert fake.messages[0].blocks == blocks


@pytest.mark.parametrize(
    ("text", "blocks", "error"),
    [
        ("", None, "no_text"),  # neither text nor blocks
        ("x" * 40_001, None, "msg_too_long"),
        ("x", [section("s")] * 51, "invalid_blocks"),  # more than 50 blocks
        ("x", [header("h" * 151)], "invalid_blocks"),
        ("x", [header("h", kind="mrkdwn")], "invalid_blocks"),  # headers are plain_text
        ("x", [section("s" * 3_001)], "invalid_blocks"),
        ("x", [section("")], "invalid_blocks"),  # text objects need one character
        ("x", [fields(11, 1)], "invalid_blocks"),
        ("x", [fields(1, 2_001)], "invalid_blocks"),
        ("x", [{"type": "section"}], "invalid_blocks"),  # neither text nor fields
        ("x", [{"type": "no_such_block"}], "invalid_blocks"),
        ("x", ["not a block"], "invalid_blocks"),
        ("x", [section("s" * 3_000)] * 4 + [section("s")], "msg_blocks_too_long"),  # 12,001
    ],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_fake_rejects_oversized_or_malformed_content(
    fake: FakeSlack, web: WebClient, text: str, blocks: list[Any] | None, error: str
) -> None:
    assert error_of(web.chat_postMessage, channel="C0ESC", text=text, blocks=blocks) == (
        200,
        {"ok": False, "error": error},
    )
    assert fake.messages == []


def test_fake_rejects_oversized_section(web: WebClient) -> None:
    ok = web.chat_postMessage(channel="C0ESC", text="x", blocks=[section("s" * 3_000)])
    assert ok["ok"] is True
    too_long = [section("s" * 3_001)]
    assert (
        error_of(web.chat_postMessage, channel="C0ESC", text="x", blocks=too_long)[1]["error"]
        == "invalid_blocks"
    )


def test_fake_rejects_blocks_that_are_not_json(web: WebClient) -> None:
    args = {"channel": "C0ESC", "text": "x", "blocks": "[{oops"}
    assert (
        error_of(web.api_call, api_method="chat.postMessage", params=args)[1]["error"]
        == "invalid_blocks_format"
    )


# -- pacing ----------------------------------------------------------------------------------------
def test_fake_paces_one_message_per_second_per_channel(clock: EpochClock) -> None:
    with FakeSlack(TOKEN, clock=clock, channel_rate_per_s=1.0) as fake:
        assert isinstance(fake, FakeSlack)
        fake.add_channel("C0A", "a")
        fake.add_channel("C0B", "b")
        web = WebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[])
        web.chat_postMessage(channel="C0A", text="1")
        web.chat_postMessage(channel="C0B", text="other channels have their own pace")
        clock.now += 0.4
        with pytest.raises(SlackApiError) as caught:
            web.chat_postMessage(channel="C0A", text="too soon")
        response = caught.value.response
        assert (response.status_code, response["error"]) == (429, "ratelimited")
        assert response.headers["Retry-After"] == "1"
        clock.now += 0.6
        web.chat_postMessage(channel="C0A", text="2")
        assert [m.text for m in fake.messages_in("C0A")] == ["1", "2"]


# -- chat.update -----------------------------------------------------------------------------------
def test_fake_updates_a_message_and_records_it(fake: FakeSlack, web: WebClient) -> None:
    sent = web.chat_postMessage(channel="U0LENA", text="before")
    answer = web.chat_update(channel=sent["channel"], ts=sent["ts"], text="after")
    assert (answer["ts"], answer["text"]) == (sent["ts"], "after")
    assert fake.dms_to("U0LENA")[0].text == "after"
    assert [(u.ts, u.text) for u in fake.updates] == [(sent["ts"], "after")]


def test_fake_refuses_updates_it_cannot_do(web: WebClient) -> None:
    sent = web.chat_postMessage(channel="U0LENA", text="before")
    cases = [
        ({"channel": "U0LENA", "ts": sent["ts"]}, "channel_not_found"),  # needs the D… id
        ({"channel": sent["channel"], "ts": "1.000001"}, "message_not_found"),
        ({"channel": "C0OLD", "ts": sent["ts"]}, "is_inactive"),
    ]
    for args, error in cases:
        assert error_of(web.chat_update, text="x", **args)[1]["error"] == error


# -- failure injection -----------------------------------------------------------------------------
def test_fake_injects_a_failure_n_times_then_recovers(fake: FakeSlack, web: WebClient) -> None:
    fake.fail_next("chat.postMessage", "internal_error", n=2)
    for _ in range(2):
        assert error_of(web.chat_postMessage, channel="C0ESC", text="x")[1] == {
            "ok": False,
            "error": "internal_error",
        }
    assert web.chat_postMessage(channel="C0ESC", text="x")["ok"] is True
    assert len(fake.messages) == 1


def test_fake_injects_rate_limits_and_html_server_errors(fake: FakeSlack, web: WebClient) -> None:
    fake.fail_next("users.lookupByEmail", "ratelimited", status=429, retry_after=3)
    fake.fail_next("chat.postMessage", "internal_error", status=500)
    with pytest.raises(SlackApiError) as caught:
        web.users_lookupByEmail(email="lena@example.com")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "3"
    status, body = error_of(web.chat_postMessage, channel="C0ESC", text="x")
    assert status == 500
    assert body["error"].startswith("Received a response in a non-JSON format")
