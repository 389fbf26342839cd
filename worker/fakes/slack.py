"""A loopback fake of the Slack Web API methods the worker calls, for the demo and tests.

It answers ``auth.test``, ``users.lookupByEmail``, ``users.info``, ``conversations.open``,
``chat.postMessage`` and ``chat.update`` under ``/api/`` the way Slack does: every answer is JSON
with ``ok``; errors are HTTP 200 with an ``error`` code except rate limits (429 with
``Retry-After``); arguments come from the query string, a form body or a JSON body, whichever
the caller used. It enforces the documented message and Block Kit limits (see
/work/shared/API-FACTS.md and the sources cited below), paces posts per channel on an injected
clock, and can inject failures, so the real client runs unchanged against it.

It also plays Slack's side of interactivity: it posts slash commands and interaction payloads
to an app, signed as Slack signs them (or badly, or late, to see them refused), clicks the
buttons of messages it holds (a ``block_actions`` payload, :meth:`FakeSlack.click`), and serves
the ``response_url`` each carries, recording what the app answers there. The same requests go
over Socket Mode too (``apps.connections.open`` and the WebSocket it hands out,
``worker.fakes.socket_mode``: :meth:`FakeSlack.socket_command`, …). It must never listen
beyond 127.0.0.1, never talk to the real Slack, and never record the token or the signing
secret in its request log, echo them in a response or show them in a repr.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from worker.fakes.server import FakeServer, Request, Response
from worker.fakes.socket_mode import ACK_WITHIN_S, LINK_PATH, SocketAnswer, SocketModeLink

TEAM_ID = "T0FAKETEAM"
BOT_USER_ID = "U0SLABOT"
BOT_ID = "B0SLABOT"
APP_ID = "A0SLAAPP"

# chat.postMessage: "Provide no more than 40,000 characters or risk truncation"
# (docs.slack.dev/reference/methods/chat.postMessage). The docs say truncation but list
# msg_too_long too; the fake takes the stricter reading and rejects.
MAX_TEXT_CHARS = 40_000
# Block Kit limits (docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_CHARS = 3_000
MAX_SECTION_FIELDS = 10
MAX_FIELD_CHARS = 2_000
MAX_CONTEXT_ELEMENTS = 10
MAX_MARKDOWN_BLOCK_CHARS = 12_000
# Not documented: msg_blocks_too_long has been seen from about 13,000 characters of block text
# in all (slackapi/bolt-js#2509, the exact point moved with the block mix). 12,000 is below
# every reported value, so a message the fake accepts is not rejected by Slack for this.
MAX_TOTAL_BLOCK_CHARS = 12_000
# conversations.open takes 1-8 users (its "too_many_users: Needs at most 8 users" error).
MAX_OPEN_USERS = 8
# A button: text at most 75 characters, action_id at most 255, value at most 2,000
# (docs.slack.dev/reference/block-kit/block-elements/button-element); a block_id at most 255
# and unique within its message (docs.slack.dev/reference/block-kit/blocks).
MAX_BUTTON_TEXT_CHARS = 75
MAX_ACTION_ID_CHARS = 255
MAX_BUTTON_VALUE_CHARS = 2_000
#: A static_select's limits (select-menu-element, composition-objects/option-object).
MAX_SELECT_OPTIONS = 100
MAX_ACTIONS_ELEMENTS = 25
MAX_OPTION_TEXT_CHARS = 75
MAX_OPTION_VALUE_CHARS = 150
MAX_PLACEHOLDER_CHARS = 150
MAX_BLOCK_ID_CHARS = 255

_BLOCK_TYPES = frozenset(
    {"section", "header", "divider", "context", "actions", "image", "rich_text", "markdown",
     "input", "file", "video"}
)  # fmt: skip
_TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})

# A response_url takes "up to 5" messages "within 30 minutes" of the request
# (api.slack.com/interactivity/handling#message_responses); the fake refuses the sixth with
# used_url (the name Slack's answers use; UNCONFIRMED: its HTTP status, 404 here). It does not
# expire URLs: tests run in seconds.
MAX_RESPONSES_PER_URL = 5

# Slack's method names the fake implements; anything else under /api/ is unknown_method.
_METHODS = (
    "auth.test",
    "users.lookupByEmail",
    "users.info",
    "conversations.open",
    "conversations.list",
    "chat.postMessage",
    "chat.update",
    "apps.connections.open",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
)


@dataclass
class PostedMessage:
    """One message Slack accepted, as a test wants to assert on it.

    ``channel`` is the resolved id (``D…`` for a DM even when the post named a ``U…`` user),
    ``user_id`` the DM's recipient (None in channels), ``channel_name`` the channel's name
    (None in DMs). ``orphan`` is True when ``thread_ts`` named no message of that conversation:
    Slack answers ok but the reply is seen nowhere (see ``_post_message``). ``text`` and
    ``blocks`` follow ``chat.update``; ``raw`` is the payload of the post as received.
    """

    channel: str
    user_id: str | None
    channel_name: str | None
    text: str
    blocks: list[Any] | None
    thread_ts: str | None
    ts: str
    raw: dict[str, Any]
    orphan: bool = False

    def summary(self) -> dict[str, Any]:
        """What a person checking the fake wants: where, in which thread, and the text."""
        where = f"#{self.channel_name}" if self.channel_name else f"DM {self.user_id}"
        return {"to": where, "ts": self.ts, "thread_ts": self.thread_ts, "text": self.text}

    def line(self) -> str:
        """One console line: where, (in a thread), the first line of the text."""
        where = f"#{self.channel_name}" if self.channel_name else f"DM to {self.user_id}"
        thread = " (in a thread)" if self.thread_ts else ""
        first = self.text.splitlines()[0] if self.text else ""
        return f"{where}{thread}: {first}"


@dataclass(frozen=True)
class AppAnswer:
    """What an app answered a request the fake posted to it, and where its later answers go:
    ``response_url`` (served by the fake), read with :meth:`FakeSlack.responses_to`."""

    status: int
    body: str
    response_url: str


@dataclass(frozen=True)
class SharedFile:
    """A file uploaded and shared (``files_upload_v2``): its name, title and bytes."""

    filename: str
    title: str
    content: bytes


@dataclass(frozen=True)
class Upload:
    """One ``files.completeUploadExternal`` that shared files in a channel, with its comment."""

    channel: str
    channel_name: str
    comment: str
    files: list[SharedFile]


@dataclass
class _PendingFile:
    filename: str
    length: int
    content: bytes | None = None


@dataclass(frozen=True)
class MessageUpdate:
    """One accepted ``chat.update``: the new text and blocks of the message at ``ts``."""

    channel: str
    ts: str
    text: str
    blocks: list[Any] | None
    raw: dict[str, Any]


@dataclass
class _User:
    id: str
    email: str
    real_name: str
    tz: str
    deleted: bool
    is_bot: bool
    status_emoji: str = ""
    status_text: str = ""
    status_expiration: int = 0


@dataclass
class _Channel:
    id: str
    name: str
    is_member: bool
    is_archived: bool


@dataclass
class _Failure:
    error: str
    remaining: int
    status: int
    retry_after: int | None
    raw_body: bytes | None
    #: Only calls with these arguments fail (e.g. ``{"email": …}``); empty: every call.
    only: dict[str, str] = field(default_factory=dict)


class _Reject(Exception):
    """Stops a handler with a Slack error answer."""

    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.response = _error(error, status, **extra)


class _RateLimited(_Reject):
    """HTTP 429 ``ratelimited`` with ``Retry-After`` in whole seconds, as Slack answers it
    (docs.slack.dev/apis/web-api/rate-limits)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("ratelimited", 429)
        self.response.headers["Retry-After"] = str(retry_after)


def _ok(**body: Any) -> Response:
    return Response(200, {"ok": True, **body})


def _error(error: str, status: int = 200, **extra: Any) -> Response:
    return Response(status, {"ok": False, "error": error, **extra})


class FakeSlack(FakeServer):
    """Slack's Web API for the worker, over loopback, with a state API for tests.

    ``clock`` returns epoch seconds (default :func:`time.time`); it stamps message ``ts`` values
    and paces posts. ``channel_rate_per_s`` (None = unlimited) models chat.postMessage's
    "about one message per second per channel" limit: a post that comes sooner than
    ``1 / rate`` seconds after the last accepted post in the same conversation gets HTTP 429
    ``ratelimited`` with ``Retry-After``. Slack tolerates short bursts; the fake does not, which
    is the stricter reading.
    """

    def __init__(
        self,
        token: str = "xoxb-fake-token",
        *,
        clock: Callable[[], float] | None = None,
        channel_rate_per_s: float | None = None,
        signing_secret: str = "fake-signing-secret",
        app_token: str = "xapp-1-A0SLAAPP-1-fake-app-token",
    ) -> None:
        super().__init__()
        self._token = token
        self._signing_secret = signing_secret
        self._app_token = app_token
        self._socket_mode = SocketModeLink(self.lock, APP_ID)
        # response_url id -> the JSON bodies the app posted there, oldest first.
        self._responses: dict[str, list[dict[str, Any]]] = {}
        self._response_ids = itertools.count(1)
        self._responded = threading.Condition(self.lock)
        self._updated = threading.Condition(self.lock)
        self._clock = clock or time.time
        self._rate = channel_rate_per_s
        self._revoked = False
        self._users: dict[str, _User] = {}
        self._channels: dict[str, _Channel] = {}
        self._dm_of_user: dict[str, str] = {}
        self._user_of_dm: dict[str, str] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._call_hooks: dict[tuple[str, bool], list[Callable[[int], object]]] = {}
        self._calls: Counter[tuple[str, bool]] = Counter()
        # conversation id -> when it may next receive a post (epoch seconds), for the pace.
        self._next_post_at: dict[str, float] = {}
        self._last_ts_micros = 0
        self.messages: list[PostedMessage] = []
        self.updates: list[MessageUpdate] = []
        self.uploads: list[Upload] = []
        self._pending_files: dict[str, _PendingFile] = {}
        self._files_made = 0
        for method in _METHODS:
            handler = self._handler(method)
            # Slack accepts GET and POST for every method; slack_sdk always POSTs.
            self.route("GET", f"/api/{method}", handler)
            self.route("POST", f"/api/{method}", handler)
        # Not Slack's: what a person pointing a worker at the fake wants to see (no token).
        self.route("GET", "/_messages", self._list_messages)
        # The response_url of each command and interaction the fake posts to an app.
        self.route("POST", "/_respond/{response_id}", self._respond)
        # The upload URLs files.getUploadURLExternal hands out (Slack's carry their own key).
        self.route("POST", "/_upload/{file_id}", self._receive_upload)
        # The WebSocket URLs apps.connections.open hands out (Socket Mode).
        self.route("GET", LINK_PATH, self._socket_mode.accept)

    def __repr__(self) -> str:
        where = self.base_url if self._httpd is not None else "stopped"
        return f"FakeSlack({where})"

    @property
    def token(self) -> str:
        """The token this fake accepts (a made-up test credential, shown by ``fake-slack``)."""
        return self._token

    @property
    def api_url(self) -> str:
        """The URL to give ``slack_sdk.WebClient(base_url=…)`` (``SLACK_API_URL``)."""
        return f"{self.base_url}/api/"

    # -- state API -----------------------------------------------------------------------------
    def add_user(
        self,
        id: str,
        email: str,
        real_name: str,
        *,
        tz: str = "Europe/Berlin",
        deleted: bool = False,
        is_bot: bool = False,
    ) -> None:
        with self.lock:
            self._users[id] = _User(id, email, real_name, tz, deleted, is_bot)

    def set_status(
        self, user_id: str, emoji: str = "", text: str = "", expiration: int = 0
    ) -> None:
        """Set a user's status as they would in Slack (``expiration``: epoch seconds, 0 for
        none); users.info and users.lookupByEmail return it in ``profile.status_*``."""
        with self.lock:
            user = self._users[user_id]
            user.status_emoji, user.status_text = emoji, text
            user.status_expiration = expiration

    def add_channel(
        self, id: str, name: str, *, is_member: bool = True, is_archived: bool = False
    ) -> None:
        with self.lock:
            self._channels[id] = _Channel(id, name.lstrip("#"), is_member, is_archived)

    def fail_next(
        self,
        method: str,
        error: str,
        *,
        n: int = 1,
        status: int = 200,
        retry_after: int | None = None,
        raw_body: bytes | None = None,
        only: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` calls of ``method`` with ``error`` instead of doing them;
        with ``only``, the next ``n`` calls with those arguments (one person's lookups).

        A 5xx answers with an HTML page, as Slack's edge does when the API behind it fails;
        a 429 carries ``Retry-After: retry_after`` when given. ``raw_body`` replaces the body
        as is (a truncated or non-JSON answer with any status).
        """
        with self.lock:
            self._failures.setdefault(method, []).append(
                _Failure(error, n, status, retry_after, raw_body, dict(only or {}))
            )

    def _list_messages(self, request: Request) -> Response:
        with self.lock:
            return Response(200, {"messages": [m.summary() for m in self.messages]})

    def during_call(self, method: str, hook: Callable[[int], object], *, done: bool) -> None:
        """Call ``hook(n)`` inside the ``n``-th call of ``method`` (from 1): before Slack does
        it (``done=False``; a hook that returns True drops the call, as if it never reached
        Slack), or after it did it and before the answer leaves (``done=True``, successful
        calls only). How a test kills a worker on either side of a post."""
        with self.lock:
            self._call_hooks.setdefault((method, done), []).append(hook)

    def revoke_token(self) -> None:
        """Every later call answers ``token_revoked`` (the app was uninstalled)."""
        with self.lock:
            self._revoked = True

    def dms_to(self, user_id: str) -> list[PostedMessage]:
        with self.lock:
            return [m for m in self.messages if m.user_id == user_id]

    def messages_in(self, channel: str) -> list[PostedMessage]:
        """Messages in a channel given by id or name (with or without ``#``), or a DM by id."""
        name = channel.lstrip("#")
        with self.lock:
            return [m for m in self.messages if channel == m.channel or name == m.channel_name]

    # -- Slack calling an app: slash commands and interactions ----------------------------------
    @property
    def signing_secret(self) -> str:
        """The secret the fake signs with (``SLACK_SIGNING_SECRET`` for the app under test)."""
        return self._signing_secret

    def post_command(
        self,
        app_url: str,
        user_id: str,
        text: str,
        command: str = "/sla",
        *,
        bad_signature: bool = False,
        age: timedelta = timedelta(0),
    ) -> AppAnswer:
        """Post a slash command to ``app_url`` as Slack does: a form body with the fields of
        docs.slack.dev/interactivity/implementing-slash-commands, signed. ``bad_signature``
        signs with another secret; ``age`` dates the request back (a replay)."""
        form = self.command_payload(user_id, text, command)
        response_url = form["response_url"]
        return self._post_signed(app_url, urlencode(form), response_url, bad_signature, age)

    def command_payload(self, user_id: str, text: str, command: str = "/sla") -> dict[str, str]:
        """The fields Slack sends for a slash command (over HTTP as a form, over Socket Mode as
        an envelope's payload), with a ``response_url`` served by the fake."""
        response_url = self._new_response_url()
        with self.lock:
            user = self._users.get(user_id)
        return {
            "token": "fake-verification-token",  # deprecated by signing; Slack still sends it
            "team_id": TEAM_ID,
            "team_domain": "fake-workspace",
            "channel_id": "C0COMMAND",
            "channel_name": "sales",
            "user_id": user_id,
            "user_name": user.email.split("@", 1)[0] if user else "someone",
            "command": command,
            "text": text,
            "api_app_id": "A0SLAAPP",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{next(self._response_ids)}.{TEAM_ID}.faketrigger",
        }

    def post_interaction(
        self,
        app_url: str,
        payload: Mapping[str, Any],
        *,
        bad_signature: bool = False,
        age: timedelta = timedelta(0),
    ) -> AppAnswer:
        """Post an interaction payload (``block_actions``, ``view_submission``, …) as Slack
        does: a form body whose one field ``payload`` is the JSON, signed. A payload without a
        ``response_url`` gets one served by the fake."""
        body = dict(payload)
        response_url = str(body.get("response_url") or self._new_response_url())
        body.setdefault("response_url", response_url)
        form = urlencode({"payload": json.dumps(body)})
        return self._post_signed(app_url, form, response_url, bad_signature, age)

    def click(
        self,
        app_url: str,
        user_id: str,
        message: PostedMessage,
        action_id: str,
        value: str | None = None,
        **options: Any,
    ) -> AppAnswer:
        """``user_id`` clicks the button ``action_id`` (with ``value``, when several have that
        id) of a message the fake holds, as it is now: Slack posts the app a ``block_actions``
        payload (:meth:`block_actions_payload`). AssertionError when the message has no such
        button: a test clicks only what was sent."""
        return self.post_interaction(
            app_url, self.block_actions_payload(user_id, message, action_id, value), **options
        )

    def block_actions_payload(
        self, user_id: str, message: PostedMessage, action_id: str, value: str | None = None
    ) -> dict[str, Any]:
        """What Slack posts when ``user_id`` clicks a button of ``message`` (the fields of
        docs.slack.dev/reference/interaction-payloads/block_actions-payload): who, the action
        with its ``block_id`` and ``value``, the message's ``container``, its ``channel``, the
        ``message`` itself as Slack holds it (blocks with ``block_id`` s, which Slack gives the
        blocks that have none), a ``response_url`` and a ``trigger_id``."""
        with self.lock:
            user = self._users.get(user_id)
            blocks = [
                {**block, "block_id": block.get("block_id") or f"fake-{position}"}
                for position, block in enumerate(message.blocks or [])
            ]
            text, ts, channel_id = message.text, message.ts, message.channel
            channel_name = message.channel_name or "directmessage"
        clicked = next(
            (
                (block, element)
                for block in blocks
                for element in _interactive_elements(block)
                if element.get("action_id") == action_id
                and (value is None or value in _values_of(element))
            ),
            None,
        )
        if clicked is None:
            raise AssertionError(f"no button {action_id!r} ({value!r}) in message {ts}")
        block, element = clicked
        # A menu (static_select) sends the option chosen instead of a value and a text.
        chosen = next((o for o in element.get("options") or [] if o.get("value") == value), None)
        what: dict[str, Any] = (
            {
                "selected_option": json.loads(json.dumps(chosen)),
                "placeholder": element.get("placeholder"),
            }
            if chosen is not None
            else {"text": element.get("text"), "value": element.get("value")}
        )
        handle = user.email.split("@", 1)[0] if user else "someone"
        action_ts = f"{time.time():.6f}"
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": handle, "name": handle, "team_id": TEAM_ID},
            "api_app_id": "A0SLAAPP",
            "token": "fake-verification-token",
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": f"{next(self._response_ids)}.{TEAM_ID}.faketrigger",
            "team": {"id": TEAM_ID, "domain": "fake-workspace"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": channel_name},
            "message": {
                "type": "message",
                "subtype": "bot_message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "team": TEAM_ID,
                "ts": ts,
                "text": text,
                "blocks": blocks,
            },
            "state": {"values": {}},
            "response_url": self._new_response_url(),
            "actions": [
                {
                    "type": element.get("type"),
                    "action_id": action_id,
                    "block_id": block["block_id"],
                    **what,
                    "action_ts": action_ts,
                }
            ],
        }

    # -- Slack calling an app over Socket Mode ---------------------------------------------------
    @property
    def app_token(self) -> str:
        """The app-level token ``apps.connections.open`` accepts (``SLACK_APP_TOKEN``)."""
        return self._app_token

    def socket_command(
        self,
        user_id: str,
        text: str,
        command: str = "/sla",
        *,
        timeout: float = ACK_WITHIN_S,
    ) -> SocketAnswer:
        """:meth:`post_command`, over Socket Mode: a ``slash_commands`` envelope to the app's
        newest connection; whether the app acknowledged it within ``timeout`` seconds."""
        payload = self.command_payload(user_id, text, command)
        return self._send_envelope("slash_commands", payload, True, timeout)

    def socket_interaction(
        self, payload: Mapping[str, Any], *, timeout: float = ACK_WITHIN_S
    ) -> SocketAnswer:
        """:meth:`post_interaction`, over Socket Mode: an ``interactive`` envelope. (A
        ``block_actions`` envelope does not accept a response payload; UNCONFIRMED for the
        other interaction types, which the worker does not use.)"""
        body = dict(payload)
        body.setdefault("response_url", self._new_response_url())
        return self._send_envelope("interactive", body, False, timeout)

    def socket_click(
        self,
        user_id: str,
        message: PostedMessage,
        action_id: str,
        value: str | None = None,
        *,
        timeout: float = ACK_WITHIN_S,
    ) -> SocketAnswer:
        """:meth:`click`, over Socket Mode."""
        payload = self.block_actions_payload(user_id, message, action_id, value)
        return self.socket_interaction(payload, timeout=timeout)

    def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the connected apps to reconnect (Slack's ``disconnect`` message)."""
        self._socket_mode.disconnect(reason)

    def await_socket(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until an app has opened its ``count``-th Socket Mode connection (in all, and
        got its ``hello``) and one is open; AssertionError when it does not within ``timeout``."""
        self._socket_mode.await_connections(count, timeout)

    @property
    def socket_connections(self) -> int:
        """Socket Mode connections open now."""
        return self._socket_mode.open_connections()

    def stop(self) -> None:
        self._socket_mode.close_all()
        super().stop()

    def _send_envelope(
        self, kind: str, payload: dict[str, Any], accepts_response_payload: bool, timeout: float
    ) -> SocketAnswer:
        acknowledged, envelope_id, answer = self._socket_mode.send(
            kind, payload, accepts_response_payload=accepts_response_payload, timeout=timeout
        )
        return SocketAnswer(acknowledged, envelope_id, str(payload["response_url"]), answer)

    def responses_to(self, response_url: str) -> list[dict[str, Any]]:
        """What the app posted to one of the fake's response URLs, oldest first."""
        with self.lock:
            return list(self._responses.get(response_url.rsplit("/", 1)[-1], []))

    def await_response(self, response_url: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first answer posted to ``response_url``, waiting up to ``timeout`` seconds for
        it (an app answers after it acknowledged); AssertionError when none comes."""
        key = response_url.rsplit("/", 1)[-1]
        with self._responded:
            if not self._responded.wait_for(lambda: self._responses.get(key), timeout):
                raise AssertionError(f"no answer at {response_url} within {timeout} s")
            return self._responses[key][0]

    def await_update(self, ts: str, nth: int = 1, timeout: float = 10.0) -> MessageUpdate:
        """The ``nth`` ``chat.update`` of the message ``ts`` (from 1), waiting up to
        ``timeout`` seconds for it (an app updates a message after it acknowledged the click
        that asked for it); AssertionError when none comes."""
        with self._updated:
            if not self._updated.wait_for(lambda: len(self._updates_of(ts)) >= nth, timeout):
                raise AssertionError(f"no chat.update #{nth} of {ts} within {timeout} s")
            return self._updates_of(ts)[nth - 1]

    def _updates_of(self, ts: str) -> list[MessageUpdate]:
        return [u for u in self.updates if u.ts == ts]

    def sign(self, timestamp: str, body: str, secret: str | None = None) -> str:
        """Slack's request signature (docs.slack.dev/authentication/verifying-requests-from-
        slack): ``v0=`` and the hex HMAC-SHA256, keyed with the app's signing secret, of the
        base string ``v0:<X-Slack-Request-Timestamp>:<raw body>``."""
        key = (secret or self._signing_secret).encode()
        base = f"v0:{timestamp}:{body}".encode()
        return "v0=" + hmac.new(key, base, hashlib.sha256).hexdigest()

    def _post_signed(
        self, app_url: str, body: str, response_url: str, bad_signature: bool, age: timedelta
    ) -> AppAnswer:
        # Signed with the real time, as Slack does: the app checks it against its own clock
        # (apps refuse a timestamp more than five minutes away: a replay).
        timestamp = str(int(time.time() - age.total_seconds()))
        secret = "not-" + self._signing_secret if bad_signature else None
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": self.sign(timestamp, body, secret),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        answer = requests.post(app_url, data=body.encode(), headers=headers, timeout=10)
        return AppAnswer(answer.status_code, answer.text, response_url)

    def _new_response_url(self) -> str:
        key = f"R{next(self._response_ids):06d}"
        with self.lock:
            self._responses[key] = []
        return f"{self.base_url}/_respond/{key}"

    def _respond(self, request: Request) -> Response:
        key = request.params["response_id"]
        with self._responded:
            posted = self._responses.get(key)
            if posted is None:
                return Response(404, raw=b"expired_url")
            if len(posted) >= MAX_RESPONSES_PER_URL:
                return Response(404, raw=b"used_url")
            try:
                body = request.json()
            except ValueError:
                return Response(400, raw=b"invalid_payload")
            if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
                return Response(400, raw=b"no_text")
            posted.append(body)
            self._responded.notify_all()
        return Response(200, raw=b"ok")

    # -- request plumbing ----------------------------------------------------------------------
    def not_found(self, request: Request) -> Response:
        # Slack answers a method it does not know with unknown_method and echoes the name in
        # req_method, before looking at the token (an unauthenticated call to a real method
        # gets not_authed instead). The HTTP status is UNCONFIRMED: public fakes use 200 or
        # 404; 404 is the stricter reading (a client must not read it as a success).
        method = request.path.removeprefix("/api/")
        return _error("unknown_method", 404, req_method=method)

    def _handler(self, method: str) -> Callable[[Request], Response]:
        implementations: dict[str, Callable[[dict[str, Any]], Response]] = {
            "auth.test": self._auth_test,
            "users.lookupByEmail": self._lookup_by_email,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "conversations.list": self._conversations_list,
            "chat.postMessage": self._post_message,
            "chat.update": self._update_message,
            "apps.connections.open": self._connections_open,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }
        implementation = implementations[method]

        def handle(request: Request) -> Response:
            try:
                args = _arguments(request)
            except ValueError:
                return _error("invalid_form_data")
            with self.lock:
                try:
                    if method == "apps.connections.open":
                        self._authenticate_app(request, args)
                    else:
                        self._authenticate(request, args)
                    injected = self._injected(method, args)
                    if injected is not None:
                        return injected
                    if self._call_hook(method, done=False):
                        return _error("request_dropped", 500)  # never read: the caller is gone
                    response = implementation(args)
                    if isinstance(response.body, dict) and response.body.get("ok"):
                        self._call_hook(method, done=True)
                    return response
                except _Reject as reject:
                    return reject.response

        return handle

    def _call_hook(self, method: str, *, done: bool) -> bool:
        """Run the hooks of this call; True when one of them drops it."""
        hooks = self._call_hooks.get((method, done))
        if not hooks:
            return False
        self._calls[method, done] += 1
        return any([hook(self._calls[method, done]) is True for hook in list(hooks)])

    def _authenticate_app(self, request: Request, args: dict[str, Any]) -> None:
        """apps.connections.open takes only the app-level token, and only in the Authorization
        header: "passing it as a POST parameter will result in an error"
        (api.slack.com/methods/apps.connections.open), which is invalid_auth
        (slackapi/python-slack-sdk#1877: ``token=xapp-…`` in the form gets invalid_auth, the same
        token as ``Authorization: Bearer`` succeeds). A bot token gets not_allowed_token_type
        (slack-ruby/slack-ruby-client#363); a token Slack does not know, invalid_auth."""
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not token:
            raise _Reject("invalid_auth" if args.pop("token", None) else "not_authed")
        if hmac.compare_digest(token.encode(), self._token.encode()) or token.startswith("xox"):
            raise _Reject("not_allowed_token_type")
        if not hmac.compare_digest(token.encode(), self._app_token.encode()):
            raise _Reject("invalid_auth")

    def _authenticate(self, request: Request, args: dict[str, Any]) -> None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        # Slack also takes the token as a ``token`` argument of a form post.
        token = token or str(args.pop("token", "") or "")
        if not token:
            raise _Reject("not_authed")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            raise _Reject("invalid_auth")
        if self._revoked:
            raise _Reject("token_revoked")

    def _injected(self, method: str, args: dict[str, Any]) -> Response | None:
        queue = self._failures.get(method) or []
        failure = next(
            (f for f in queue if all(str(args.get(k)) == v for k, v in f.only.items())), None
        )
        if failure is None:
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.remove(failure)
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
        if failure.raw_body is not None:
            return Response(failure.status, raw=failure.raw_body, headers=headers)
        if failure.status >= 500:
            page = f"<html><body><h1>{failure.status}</h1><p>{failure.error}</p></body></html>"
            return Response(failure.status, raw=page.encode(), headers=headers)
        response = _error(failure.error, failure.status)
        response.headers.update(headers)
        return response

    # -- methods -------------------------------------------------------------------------------
    def _auth_test(self, args: dict[str, Any]) -> Response:
        return _ok(
            url="https://fake-workspace.slack.com/",
            team="Fake Workspace",
            user="sla-bot",
            team_id=TEAM_ID,
            user_id=BOT_USER_ID,
            bot_id=BOT_ID,
            is_enterprise_install=False,
        )

    def _connections_open(self, args: dict[str, Any]) -> Response:
        """A WebSocket URL for Socket Mode, ``ws://`` on the fake's loopback address (Slack's
        are ``wss://wss-….slack.com/link/?ticket=…&app_id=…``). slack_sdk's built-in client
        speaks plain ``ws://`` to any port but 443."""
        return _ok(url=self._socket_mode.new_url(self.base_url))

    def _lookup_by_email(self, args: dict[str, Any]) -> Response:
        email = str(args.get("email") or "")
        if not email:
            raise _Reject("invalid_arguments")
        # Matching ignores case (UNCONFIRMED for Slack; e-mail domains are case-insensitive
        # and CRMs store addresses in mixed case). users_not_found covers unknown *and*
        # deactivated users (docs.slack.dev/reference/methods/users.lookupByEmail).
        for user in self._users.values():
            if user.email.lower() == email.lower() and not user.deleted:
                return _ok(user=self._user_object(user))
        raise _Reject("users_not_found")

    def _users_info(self, args: dict[str, Any]) -> Response:
        user = self._users.get(str(args.get("user") or ""))
        if user is None:
            raise _Reject("user_not_found")
        # Deactivated users are still returned, with ``deleted: true``.
        return _ok(user=self._user_object(user))

    def _conversations_list(self, args: dict[str, Any]) -> Response:
        """Channels in id order, ``limit`` a page (Slack: at most 1,000) and a
        ``response_metadata.next_cursor`` ("" on the last page); each with ``is_member`` and
        ``is_archived``, as conversations.list answers (docs.slack.dev/reference/methods/
        conversations.list). Archived ones are left out with ``exclude_archived``."""
        try:
            limit = min(max(int(args.get("limit") or 100), 1), 1000)
            start = int(str(args.get("cursor") or "0") or "0")
        except ValueError:
            raise _Reject("invalid_cursor") from None
        exclude = str(args.get("exclude_archived") or "").lower() in ("1", "true")
        channels = sorted(self._channels.values(), key=lambda c: c.id)
        if exclude:
            channels = [c for c in channels if not c.is_archived]
        page = channels[start : start + limit]
        following = str(start + limit) if start + limit < len(channels) else ""
        return _ok(
            channels=[
                {
                    "id": c.id,
                    "name": c.name,
                    "is_channel": True,
                    "is_private": False,
                    "is_archived": c.is_archived,
                    "is_member": c.is_member,
                }
                for c in page
            ],
            response_metadata={"next_cursor": following},
        )

    def _conversations_open(self, args: dict[str, Any]) -> Response:
        raw = args.get("users")
        ids = raw if isinstance(raw, list) else str(raw or "").split(",")
        ids = [str(i).strip() for i in ids if str(i).strip()]
        if not ids:
            raise _Reject("users_list_not_supplied")
        if len(ids) > MAX_OPEN_USERS:
            raise _Reject("too_many_users")
        for user_id in ids:
            user = self._users.get(user_id)
            if user is None:
                raise _Reject("user_not_found")
            # conversations.open documents user_disabled: "A specified user has been disabled".
            if user.deleted:
                raise _Reject("user_disabled")
        if len(ids) > 1:
            # Group DMs are not something the worker opens; the fake does not model them.
            raise _Reject("method_not_supported_for_channel_type")
        dm = self._open_dm(ids[0])
        return _ok(channel={"id": dm})

    def _post_message(self, args: dict[str, Any]) -> Response:
        channel_id, user_id, channel_name = self._resolve_for_post(str(args.get("channel") or ""))
        text, blocks = _content(args)
        thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
        orphan = False
        if thread_ts is not None:
            # chat.postMessage documents no thread_not_found: Slack answers ok for a thread_ts
            # that names no message, and the reply shows up neither in a thread nor in the
            # channel (slackapi/python-slack-sdk#840). The fake does the same and marks it.
            orphan = not any(m.channel == channel_id and m.ts == thread_ts for m in self.messages)
        self._pace_post(channel_id)
        ts = self._next_ts()
        self.messages.append(
            PostedMessage(
                channel=channel_id,
                user_id=user_id,
                channel_name=channel_name,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                ts=ts,
                raw=dict(args),
                orphan=orphan,
            )
        )
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": text,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
            "ts": ts,
        }
        if blocks is not None:
            message["blocks"] = blocks
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        return _ok(channel=channel_id, ts=ts, message=message)

    def _update_message(self, args: dict[str, Any]) -> Response:
        channel_id = str(args.get("channel") or "")
        # chat.update needs the conversation id: for a DM the D… id, not the user's U… id
        # (docs.slack.dev/reference/methods/chat.update, argument ``channel``).
        channel = self._channels.get(channel_id)
        if channel is None and channel_id not in self._user_of_dm:
            raise _Reject("channel_not_found")
        if channel is not None and channel.is_archived:
            raise _Reject("is_inactive")
        ts = str(args.get("ts") or "")
        target = next((m for m in self.messages if m.channel == channel_id and m.ts == ts), None)
        if target is None:
            raise _Reject("message_not_found")
        text, blocks = _content(args)
        target.text = text
        target.blocks = blocks
        self.updates.append(MessageUpdate(channel_id, ts, text, blocks, dict(args)))
        self._updated.notify_all()
        message: dict[str, Any] = {"type": "message", "text": text, "user": BOT_USER_ID}
        if blocks is not None:
            message["blocks"] = blocks
        return _ok(channel=channel_id, ts=ts, text=text, message=message)

    # -- helpers (called with self.lock held) --------------------------------------------------
    def _user_object(self, user: _User) -> dict[str, Any]:
        label, offset = _tz_label_and_offset(user.tz, self._clock())
        handle = user.email.split("@", 1)[0]
        return {
            "id": user.id,
            "team_id": TEAM_ID,
            "name": handle,
            "real_name": user.real_name,
            "tz": user.tz,
            "tz_label": label,
            "tz_offset": offset,
            "deleted": user.deleted,
            "is_bot": user.is_bot,
            "profile": {
                "email": user.email,
                "real_name": user.real_name,
                "display_name": user.real_name.split(" ", 1)[0],
                "status_emoji": user.status_emoji,
                "status_text": user.status_text,
                "status_expiration": user.status_expiration,
            },
        }

    # files_upload_v2 (docs.slack.dev/messaging/working-with-files#uploading_files): a URL per
    # file, the bytes POSTed to it, then one call that shares them with a comment.
    def _get_upload_url(self, args: dict[str, Any]) -> Response:
        filename = str(args.get("filename") or "")
        try:
            length = int(args.get("length") or 0)
        except ValueError:
            length = 0
        if not filename or length <= 0:
            raise _Reject("invalid_arguments")
        self._files_made += 1
        file_id = f"F{self._files_made:09d}"
        self._pending_files[file_id] = _PendingFile(filename, length)
        return _ok(upload_url=f"{self.base_url}/_upload/{file_id}", file_id=file_id)

    def _receive_upload(self, request: Request) -> Response:
        with self.lock:
            pending = self._pending_files.get(request.params["file_id"])
            if pending is None:
                return Response(404, raw=b"Not Found")
            if len(request.body) != pending.length:
                return Response(400, raw=b"length does not match")
            pending.content = request.body
        return Response(200, raw=f"OK - {len(request.body)}".encode())

    def _complete_upload(self, args: dict[str, Any]) -> Response:
        try:
            listed = json.loads(str(args.get("files") or "[]"))
        except ValueError:
            raise _Reject("invalid_arguments") from None
        shared = []
        for entry in listed if isinstance(listed, list) else []:
            pending = self._pending_files.get(str(entry.get("id")))
            if pending is None or pending.content is None:
                raise _Reject("file_not_found")
            title = str(entry.get("title") or pending.filename)
            shared.append(
                (str(entry.get("id")), SharedFile(pending.filename, title, pending.content))
            )
        if not shared:
            raise _Reject("invalid_arguments")
        channel = self._channels.get(str(args.get("channel_id") or ""))
        if channel is None:
            raise _Reject("channel_not_found")  # an id, not a name
        if channel.is_archived:
            raise _Reject("is_archived")
        if not channel.is_member:
            raise _Reject("not_in_channel")
        for file_id, _ in shared:
            del self._pending_files[file_id]
        self.uploads.append(
            Upload(
                channel.id,
                channel.name,
                str(args.get("initial_comment") or ""),
                [file for _, file in shared],
            )
        )
        return _ok(files=[{"id": file_id, "title": file.title} for file_id, file in shared])

    def _open_dm(self, user_id: str) -> str:
        dm = self._dm_of_user.get(user_id)
        if dm is None:
            dm = f"D{len(self._dm_of_user) + 1:09d}"
            self._dm_of_user[user_id] = dm
            self._user_of_dm[dm] = user_id
        return dm

    def _resolve_for_post(self, target: str) -> tuple[str, str | None, str | None]:
        """(conversation id, DM recipient, channel name) for chat.postMessage's ``channel``."""
        if target[:1] in ("U", "W") and target in self._users:
            # Posting to a user id opens (or reuses) the DM with them. Slack accepts this for
            # a deactivated user too: "chat_postMessage succeeds to deleted user", and Slack
            # staff explained their DM history still exists (slackapi/python-slack-sdk#1156).
            return self._open_dm(target), target, None
        if target in self._user_of_dm:
            return target, self._user_of_dm[target], None
        channel = self._channels.get(target)
        if channel is None:
            name = target.removeprefix("#")
            channel = next((c for c in self._channels.values() if c.name == name), None)
        if channel is None:
            raise _Reject("channel_not_found")
        if channel.is_archived:
            raise _Reject("is_archived")
        if not channel.is_member:
            raise _Reject("not_in_channel")
        return channel.id, None, channel.name

    def _pace_post(self, channel_id: str) -> None:
        if self._rate is None:
            return
        now = self._clock()
        allowed_at = self._next_post_at.get(channel_id, now)
        if now < allowed_at:
            wait = max(1, math.ceil(allowed_at - now))
            raise _RateLimited(wait)
        self._next_post_at[channel_id] = now + 1.0 / self._rate

    def _next_ts(self) -> str:
        """A message ts like ``1700000000.000100``: the clock in microseconds, strictly
        increasing across the workspace, so it is unique as Slack's are within a channel."""
        micros = max(round(self._clock() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _arguments(request: Request) -> dict[str, Any]:
    """The call's arguments: query string, then a form or JSON body over it (Slack reads all
    three; slack_sdk sends JSON for chat.* and a form body for the rest)."""
    args: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
    if not request.body:
        return args
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/json":
        body = json.loads(request.body)
        if not isinstance(body, dict):
            raise ValueError("a JSON body must be an object")
        args.update(body)
    else:
        form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        args.update({k: v[-1] for k, v in form.items()})
    return args


def _content(args: dict[str, Any]) -> tuple[str, list[Any] | None]:
    """Validated (text, blocks) of a post or update, or the error Slack gives."""
    text = args.get("text")
    text = "" if text is None else str(text)
    blocks = _parse_blocks(args.get("blocks"))
    if not text.strip() and not blocks:
        raise _Reject("no_text")
    if len(text) > MAX_TEXT_CHARS:
        raise _Reject("msg_too_long")
    if blocks is not None:
        _check_blocks(blocks)
    return text, blocks


def _parse_blocks(raw: Any) -> list[Any] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        # A form post carries blocks as a JSON string; Slack names a string it cannot parse
        # invalid_blocks_format (chat.update's documented errors).
        try:
            raw = json.loads(raw)
        except ValueError:
            raise _Reject("invalid_blocks_format") from None
    if not isinstance(raw, list):
        raise _Reject("invalid_blocks_format")
    return raw


def _check_blocks(blocks: list[Any]) -> None:
    if len(blocks) > MAX_BLOCKS:
        raise _Reject("invalid_blocks")
    block_ids: set[str] = set()
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            raise _Reject("invalid_blocks")
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 1 <= len(block_id) <= MAX_BLOCK_ID_CHARS:
                raise _Reject("invalid_blocks")
            if block_id in block_ids:  # "unique for each message"
                raise _Reject("invalid_blocks")
            block_ids.add(block_id)
        kind = block["type"]
        if kind == "header":
            _check_text_object(block.get("text"), MAX_HEADER_CHARS, plain_only=True)
        elif kind == "section":
            fields = block.get("fields")
            if block.get("text") is None and not fields:
                raise _Reject("invalid_blocks")
            if block.get("text") is not None:
                _check_text_object(block["text"], MAX_SECTION_CHARS)
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    raise _Reject("invalid_blocks")
                for item in fields:
                    _check_text_object(item, MAX_FIELD_CHARS)
            if block.get("accessory") is not None:
                _check_element(block["accessory"])
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS:
                raise _Reject("invalid_blocks")
            for element in elements:
                _check_element(element)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
                raise _Reject("invalid_blocks")
            for element in elements:
                if isinstance(element, dict) and element.get("type") in _TEXT_TYPES:
                    _check_text_object(element, MAX_SECTION_CHARS)
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not 1 <= len(text) <= MAX_MARKDOWN_BLOCK_CHARS:
                raise _Reject("invalid_blocks")
    if _block_text_length(blocks) > MAX_TOTAL_BLOCK_CHARS:
        raise _Reject("msg_blocks_too_long")


def _check_element(element: Any) -> None:
    """An interactive element (a section's accessory); buttons are checked in full."""
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        raise _Reject("invalid_blocks")
    if element["type"] == "static_select":
        _check_static_select(element)
        return
    if element["type"] != "button":
        return
    _check_text_object(element.get("text"), MAX_BUTTON_TEXT_CHARS, plain_only=True)
    action_id = element.get("action_id")
    if action_id is not None and not (
        isinstance(action_id, str) and 1 <= len(action_id) <= MAX_ACTION_ID_CHARS
    ):
        raise _Reject("invalid_blocks")
    value = element.get("value")
    if value is not None and not (
        isinstance(value, str) and 1 <= len(value) <= MAX_BUTTON_VALUE_CHARS
    ):
        raise _Reject("invalid_blocks")


def _check_static_select(element: dict[str, Any]) -> None:
    """A menu (docs.slack.dev/reference/block-kit/block-elements/select-menu-element): 1 to
    100 options, each a plain_text of at most 75 characters and a value of at most 150; a
    placeholder of at most 150."""
    if element.get("placeholder") is not None:
        _check_text_object(element["placeholder"], MAX_PLACEHOLDER_CHARS, plain_only=True)
    options = element.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= MAX_SELECT_OPTIONS:
        raise _Reject("invalid_blocks")
    for option in options:
        if not isinstance(option, dict):
            raise _Reject("invalid_blocks")
        _check_text_object(option.get("text"), MAX_OPTION_TEXT_CHARS, plain_only=True)
        value = option.get("value")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_OPTION_VALUE_CHARS:
            raise _Reject("invalid_blocks")


def _values_of(element: Mapping[str, Any]) -> list[Any]:
    """A button's value, or the values of a menu's options (one of which a click chooses)."""
    if "options" in element:
        return [o.get("value") for o in element.get("options") or [] if isinstance(o, dict)]
    return [element.get("value")]


def _interactive_elements(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A block's buttons and other interactive elements: a section's accessory, an actions
    block's elements."""
    if block.get("type") == "section" and isinstance(block.get("accessory"), dict):
        return [block["accessory"]]
    if block.get("type") == "actions":
        return [e for e in block.get("elements") or [] if isinstance(e, dict)]
    return []


def _check_text_object(value: Any, limit: int, *, plain_only: bool = False) -> None:
    allowed = {"plain_text"} if plain_only else _TEXT_TYPES
    if not isinstance(value, dict) or value.get("type") not in allowed:
        raise _Reject("invalid_blocks")
    text = value.get("text")
    # Text objects need at least one character (Block Kit composition objects reference).
    if not isinstance(text, str) or not 1 <= len(text) <= limit:
        raise _Reject("invalid_blocks")


def _block_text_length(value: Any) -> int:
    """Characters of every ``text`` string anywhere in the blocks."""
    if isinstance(value, list):
        return sum(_block_text_length(item) for item in value)
    if isinstance(value, dict):
        total = 0
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                total += len(item)
            else:
                total += _block_text_length(item)
        return total
    return 0


def _tz_label_and_offset(tz: str, now: float) -> tuple[str, int]:
    """Slack's ``tz_label`` (a name like "Central European Summer Time"; the fake gives the
    zone's abbreviation) and ``tz_offset`` in seconds east of UTC, at ``now``."""
    try:
        local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(tz))
    except (ZoneInfoNotFoundError, ValueError):
        return tz, 0
    offset = local.utcoffset()
    return local.tzname() or tz, int(offset.total_seconds()) if offset else 0
