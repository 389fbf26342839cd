"""The worker's Slack client: find a person by e-mail, post and update messages, check the token.

A thin layer over ``slack_sdk.WebClient`` that maps Slack's answers onto ``worker.errors``:
rate limits and server trouble become :class:`TransientError` (with Slack's ``Retry-After``),
rejected credentials :class:`AuthError`, everything else :class:`PermanentError` carrying
Slack's error code. It knows nothing about SLAs or message rendering, never sleeps on a rate
limit (the outbox reschedules instead), and never puts the token into a log line, an exception
message or a repr.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from typing import Any
from urllib.request import HTTPRedirectHandler, Request

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from worker import metrics
from worker.errors import AuthError, PermanentError, TransientError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://slack.com/api/"

#: Slack errors that mean "the token is no good": nothing else will work until an admin acts.
#: (The common errors of every method page, e.g. docs.slack.dev/reference/methods/chat.update.)
AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "org_login_required",
        "ekm_access_denied",
    }
)
#: Slack errors documented as passing ("likely due to a transient issue on our end").
TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
#: Rate limit codes: ``ratelimited`` (HTTP 429 on every method) and the older ``rate_limited``
#: that chat.postMessage still documents for "posted too many messages".
RATE_LIMIT_ERRORS = frozenset({"ratelimited", "rate_limited"})
# slack_sdk turns a body it cannot parse as JSON into this error text (web/internal_utils.py,
# _build_unexpected_body_error_message): a proxy's or load balancer's HTML page.
_NON_JSON_PREFIX = "Received a response in a non-JSON format"
_DEFAULT_RETRY_AFTER = timedelta(seconds=1)


class _StayingWebClient(WebClient):
    """slack_sdk's WebClient, except that a request never follows a redirect and the token
    never leaves with one.

    urllib follows 3xx answers and copies the request's headers, ``Authorization: Bearer
    xoxb-…`` included, to wherever ``Location`` points (CPython's ``HTTPRedirectHandler.
    redirect_request``); slack_sdk uses urllib's default opener. So the token goes into
    urllib's "unredirected" headers (documented as never added to a redirected request), and
    the request says it has used up its redirects, which makes urllib raise ``HTTPError`` on
    the first 3xx instead of following it. Slack's Web API never redirects an API call.
    """

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        token = req.headers.pop("Authorization", None)  # urllib capitalizes header names
        if token is not None:
            req.add_unredirected_header("Authorization", token)
        # Read by HTTPRedirectHandler.http_error_302: a full redirect history means "refuse".
        req.redirect_dict = {  # type: ignore[attr-defined]
            f"refused:{n}": 1 for n in range(HTTPRedirectHandler.max_redirections)
        }
        result: dict[str, Any] = super()._perform_urllib_http_request_internal(url, req)
        return result


@dataclass(frozen=True)
class SlackUser:
    """A Slack member found by e-mail. ``name`` is the real name (the handle when unset),
    ``tz`` the IANA zone from the profile (None when Slack gives none)."""

    id: str
    name: str
    tz: str | None
    deleted: bool
    #: The profile's e-mail, from ``user_by_id`` (needs ``users:read.email``); None when
    #: Slack gives none (a bot) and from a lookup by e-mail (the caller has it).
    email: str | None = None
    #: The profile's status (``profile.status_emoji``, ``status_text``) and when it expires
    #: (``status_expiration``, epoch seconds; 0 means never: None here).
    status_emoji: str = ""
    status_text: str = ""
    status_expires_at: datetime | None = None


@dataclass(frozen=True)
class SlackChannel:
    id: str
    name: str
    is_member: bool
    is_archived: bool


@dataclass(frozen=True)
class SentMessage:
    """Where a message landed: the conversation id (``D…`` for a DM posted to a ``U…`` id)
    and its ``ts``, which ``update_message`` and thread replies need."""

    channel: str
    ts: str


class SlackClient:
    """Slack Web API calls the deliver stage needs, with Slack's failures mapped.

    Only slack_sdk's default retry handler (one retry of a failed connection) is kept; no
    ``RateLimitErrorRetryHandler``: it would sleep ``Retry-After`` inside a Celery worker,
    blocking every other delivery. A 429 goes back as ``TransientError(retry_after=…)`` and the
    outbox reschedules the row for then.
    """

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: int = 10,
        web_client: WebClient | None = None,
    ) -> None:
        self._token = token
        self._web = web_client or _StayingWebClient(token=token, base_url=base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"SlackClient(base_url={self._web.base_url!r})"

    # -- what the stages call ------------------------------------------------------------------
    def lookup_user_by_email(self, email: str) -> SlackUser | None:
        """The active member with this e-mail, or None (Slack says ``users_not_found`` for
        unknown and for deactivated members alike)."""
        try:
            data = self._call(
                "users.lookupByEmail", lambda: self._web.users_lookupByEmail(email=email)
            )
        except PermanentError as e:
            if e.code == "users_not_found":
                return None
            raise
        return _user(data.get("user") or {})

    def user_by_id(self, user_id: str) -> SlackUser | None:
        """The member with this id, deactivated ones included (``deleted``), or None when
        Slack knows no such user (``users.info``: ``user_not_found``)."""
        try:
            data = self._call("users.info", lambda: self._web.users_info(user=user_id))
        except PermanentError as e:
            if e.code in ("user_not_found", "user_not_visible"):
                return None
            raise
        user = data.get("user") or {}
        email = (user.get("profile") or {}).get("email")
        return dataclasses.replace(_user(user), email=str(email) if email else None)

    def post_message(
        self,
        channel: str,
        text: str,
        *,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> SentMessage:
        """Post to a channel (id or ``#name``) or to a user id, which opens the DM. ``text``
        is the notification and screen-reader fallback when ``blocks`` are given."""
        block_list = [dict(b) for b in blocks] if blocks is not None else None
        data = self._call(
            "chat.postMessage",
            lambda: self._web.chat_postMessage(
                channel=channel, text=text, blocks=block_list, thread_ts=thread_ts
            ),
        )
        return SentMessage(channel=str(data["channel"]), ts=str(data["ts"]))

    def update_message(
        self,
        channel: str,
        ts: str,
        text: str,
        *,
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Replace a message's text and blocks. ``channel`` must be the conversation id from
        :class:`SentMessage` (for a DM the ``D…`` id, not the user's)."""
        block_list = [dict(b) for b in blocks] if blocks is not None else None
        self._call(
            "chat.update",
            lambda: self._web.chat_update(channel=channel, ts=ts, text=text, blocks=block_list),
        )

    def channels(self) -> list[SlackChannel]:
        """Every channel the token can see, with whether the bot is in it (for ``preflight``;
        needs ``channels:read``, and ``groups:read`` for private channels)."""
        found: list[SlackChannel] = []
        cursor = ""
        while True:
            page = functools.partial(
                self._web.conversations_list,
                limit=1000,
                cursor=cursor or None,
                types="public_channel,private_channel",
            )
            data = self._call("conversations.list", page)
            for item in data.get("channels") or []:
                found.append(
                    SlackChannel(
                        id=str(item.get("id")),
                        name=str(item.get("name") or ""),
                        is_member=bool(item.get("is_member")),
                        is_archived=bool(item.get("is_archived")),
                    )
                )
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return found

    def upload_files(
        self, channel: str, comment: str, files: Sequence[tuple[str, str, bytes]]
    ) -> str:
        """Share ``files`` (name, title, content) in ``channel`` (an id, or ``#name``) with
        ``comment`` as their message; the first file's id. Through ``files_upload_v2``: Slack
        retired ``files.upload`` (2025-11-12), and its successor shares by channel *id*
        (``files.completeUploadExternal``), so a name is looked up first (needs
        ``channels:read``); the bot must be in the channel and needs ``files:write``."""
        channel_id = channel
        if channel.startswith("#"):
            name = channel[1:]
            found = next((c for c in self.channels() if c.name == name), None)
            if found is None:
                raise PermanentError(
                    f"Slack has no channel {channel} the bot can see", code="channel_not_found"
                )
            channel_id = found.id
        uploads = [
            {"filename": filename, "title": title, "content": content}
            for filename, title, content in files
        ]
        data = self._call(
            "files.completeUploadExternal",
            lambda: self._web.files_upload_v2(
                file_uploads=uploads, channel=channel_id, initial_comment=comment
            ),
        )
        shared = data.get("files") or [{}]
        return str(shared[0].get("id") or "")

    def check_auth(self) -> None:
        """Raise :class:`AuthError` unless the token works (``auth.test``)."""
        self._call("auth.test", self._web.auth_test)

    # -- mapping -------------------------------------------------------------------------------
    def _call(self, method: str, call: Callable[[], SlackResponse]) -> Mapping[str, Any]:
        """``call``'s data, or the project's error for its failure (counted for metrics)."""
        return metrics.counting_errors("slack", lambda: self._mapped(method, call))

    def _mapped(self, method: str, call: Callable[[], SlackResponse]) -> Mapping[str, Any]:
        try:
            response = call()
        except SlackApiError as e:
            raise self._api_error(method, e.response) from None
        except (OSError, HTTPException) as e:
            # Connection refused/reset, DNS, TLS and read timeouts (URLError and TimeoutError
            # are OSErrors), after slack_sdk's own single connection retry.
            raise TransientError(
                self._redact(f"Slack {method}: {type(e).__name__}: {e}"), code=type(e).__name__
            ) from None
        except ValueError as e:
            # A 200 whose body starts like JSON but is cut off: slack_sdk's json.loads raises.
            raise TransientError(
                self._redact(f"Slack {method}: unreadable answer ({e})"), code="unreadable"
            ) from None
        except SlackClientError as e:
            # The SDK refused the request before sending it: a bug on our side.
            raise PermanentError(self._redact(f"Slack {method}: {e}"), code=None) from None
        data = response.data
        if not isinstance(data, dict):
            raise TransientError(f"Slack {method}: answered with a non-JSON body", code="not_json")
        return data

    def _api_error(self, method: str, response: SlackResponse) -> Exception:
        status = int(response.status_code)
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or "")
        where = f"Slack {method} failed with HTTP {status}"
        if status == 429 or code in RATE_LIMIT_ERRORS:
            wait = _retry_after(response.headers)
            return TransientError(
                f"{where}: {code or 'ratelimited'}, retry after {wait.total_seconds():.0f} s",
                retry_after=wait,
                code=code or "ratelimited",
            )
        if 300 <= status < 400:
            # Refused by _StayingWebClient: the token stays here; SLACK_API_URL is probably
            # wrong. Retried, so nothing is lost while an admin fixes it.
            return TransientError(
                f"{where}: a redirect, refused (check SLACK_API_URL)", code=f"HTTP_{status}"
            )
        if status >= 500 or code in TRANSIENT_ERRORS:
            known = code if code in TRANSIENT_ERRORS else None
            return TransientError(
                f"{where}: {known or 'server error'}", code=known or f"HTTP_{status}"
            )
        if not code or code.startswith(_NON_JSON_PREFIX):
            # Not Slack's JSON: a proxy or an outage page in the way. Worth another try.
            return TransientError(f"{where}: the answer was not Slack's JSON", code="not_json")
        if code in AUTH_ERRORS:
            return AuthError(f"{where}: {code} (the bot token was rejected)", code=code)
        return PermanentError(f"{where}: {code}", code=code)

    def _redact(self, message: str) -> str:
        return message.replace(self._token, "[redacted]") if self._token else message


def _user(user: Mapping[str, Any]) -> SlackUser:
    """A ``user`` object of users.info or users.lookupByEmail."""
    profile = user.get("profile") or {}
    return SlackUser(
        id=str(user["id"]),
        name=str(user.get("real_name") or profile.get("real_name") or user.get("name") or ""),
        tz=user.get("tz") or None,
        deleted=bool(user.get("deleted", False)),
        status_emoji=str(profile.get("status_emoji") or ""),
        status_text=str(profile.get("status_text") or ""),
        status_expires_at=_expiration(profile.get("status_expiration")),
    )


def _expiration(value: Any) -> datetime | None:
    """``status_expiration`` (epoch seconds, 0 or absent: never) as an aware UTC instant."""
    try:
        seconds = int(value or 0)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def _retry_after(headers: Mapping[str, Any]) -> timedelta:
    """Slack's ``Retry-After`` (whole seconds), or one second when absent or unreadable."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                seconds = int(str(raw).strip())
            except ValueError:
                return _DEFAULT_RETRY_AFTER
            return timedelta(seconds=seconds) if seconds > 0 else _DEFAULT_RETRY_AFTER
    return _DEFAULT_RETRY_AFTER
