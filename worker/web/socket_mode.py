"""``sla-worker web`` over Socket Mode, for workspaces that cannot expose a URL to Slack.

The same bolt app (``bolt_app``: the /sla command and every button, each acknowledged at once
and handed to the workers by ``handoff``) gets Slack's requests over a WebSocket that the
worker opens to Slack with the app's app-level token (``SLACK_APP_TOKEN``, ``xapp-…``, scope
``connections:write``), instead of HTTP posts Slack makes to it. slack_bolt's built-in adapter
speaks the protocol (``slack_sdk.socket_mode.builtin``: nothing beyond slack_sdk) and opens a
new connection when Slack recycles one. No port is opened for Slack: only ``GET /healthz``
(compose's healthcheck), which answers ``ok`` while the WebSocket is open. Nothing here may log
the app token or the WebSocket URL (it carries a ticket).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http.client import HTTPException
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError, SlackClientError

from worker.errors import ConfigError, SlaWorkerError
from worker.settings import Settings
from worker.web.server import DASHBOARD_PATH, HEALTH_PATH, WebServer

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

APP_TOKEN_PREFIX = "xapp-"
#: What a token that is not an app-level one is, by its prefix (docs.slack.dev/authentication/
#: tokens): said in the error instead of any part of the token.
_OTHER_TOKENS = {"xoxb-": "a bot token", "xoxp-": "a user token", "xoxe-": "a refresh token"}
_WHERE = "the Slack app's Basic Information page, App-Level Tokens, scope connections:write"

#: apps.connections.open's answers (api.slack.com/methods/apps.connections.open lists
#: invalid_auth; a bot token gets not_allowed_token_type: slack-ruby/slack-ruby-client#363).
_REFUSALS = {
    "invalid_auth": f"Slack did not accept SLACK_APP_TOKEN (invalid_auth): it is revoked, "
    f"mistyped or another app's; make a new one on {_WHERE}",
    "not_allowed_token_type": "Slack refused SLACK_APP_TOKEN (not_allowed_token_type): Socket "
    "Mode needs the app-level token (xapp-…), not the bot or a user token",
    "missing_scope": "SLACK_APP_TOKEN lacks the scope connections:write (missing_scope): add it "
    "to the app-level token on the Slack app's Basic Information page",
    "token_revoked": f"SLACK_APP_TOKEN was revoked (token_revoked): make a new one on {_WHERE}",
}


def app_token(settings: Settings) -> str:
    """``SLACK_APP_TOKEN``, once it looks like an app-level token; else a ConfigError naming it."""
    token = settings.slack_app_token
    if not token:
        raise ConfigError(
            f"SLACK_APP_TOKEN is not set: Socket Mode connects with the Slack app's app-level "
            f"token (xapp-…; {_WHERE})"
        )
    if not token.startswith(APP_TOKEN_PREFIX):
        kind = _OTHER_TOKENS.get(token[:5], "not an app-level token (xapp-…)")
        raise ConfigError(
            f"SLACK_APP_TOKEN is {kind}: Socket Mode needs the app's app-level token (xapp-…; "
            f"{_WHERE})"
        )
    return token


class SocketModeConnection:
    """The bolt app's Socket Mode connection to Slack: :meth:`open` it, then it keeps itself
    open (a new WebSocket when Slack asks or a connection drops) until :meth:`close`."""

    def __init__(self, bolt_app: App, settings: Settings) -> None:
        self._api_url = settings.slack_api_url
        # The bolt app's WebClient (pointed at SLACK_API_URL) calls apps.connections.open with
        # the app token in the Authorization header; the bot token stays for everything else.
        self._handler = SocketModeHandler(
            bolt_app, app_token=app_token(settings), logger=_socket_logger()
        )

    @property
    def connected(self) -> bool:
        return bool(self._handler.client.is_connected())

    def open(self) -> None:
        """Ask Slack for a WebSocket URL and connect; SlaWorkerError (one line) when Slack
        refuses the token or cannot be reached."""
        try:
            self._handler.connect()  # type: ignore[no-untyped-call]
        except SlackApiError as e:
            error = str(e.response.get("error") or "unknown error")
            reason = _REFUSALS.get(error, f"Slack refused a Socket Mode connection ({error})")
            raise SlaWorkerError(reason) from None
        except (SlackClientError, OSError, HTTPException) as e:
            raise SlaWorkerError(
                f"Slack did not answer at start ({self._api_url}): {type(e).__name__}"
            ) from None
        if not self.connected:  # the client logged why the WebSocket did not open
            raise SlaWorkerError("the Socket Mode WebSocket Slack handed out did not open")

    def close(self) -> None:
        self._handler.close()  # type: ignore[no-untyped-call]


def make_health_app(
    connected: Callable[[], bool], dashboard: WSGIApplication | None = None
) -> WSGIApplication:
    """``GET /healthz``: ``ok`` while connected to Slack, 503 while not; ``GET /dashboard`` if
    a ``dashboard`` is given; nothing else."""

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        plain = [("Content-Type", "text/plain; charset=utf-8")]
        if (
            dashboard is not None
            and environ.get("PATH_INFO") == DASHBOARD_PATH
            and environ.get("REQUEST_METHOD") == "GET"
        ):
            return dashboard(environ, start_response)
        if environ.get("PATH_INFO") != HEALTH_PATH or environ.get("REQUEST_METHOD") != "GET":
            start_response("404 Not Found", plain)
            return [b"not found (Socket Mode: Slack's requests come over the WebSocket)\n"]
        if connected():
            start_response("200 OK", plain)
            return [b"ok\n"]
        start_response("503 Service Unavailable", plain)
        return [b"not connected to Slack (Socket Mode); reconnecting\n"]

    return application


def serve_socket_mode(
    bolt_app: App,
    settings: Settings,
    host: str,
    port: int,
    *,
    ready: Callable[[WebServer], None],
    dashboard: WSGIApplication | None = None,
) -> None:
    """Take Slack's requests over Socket Mode until interrupted, with ``/healthz`` (and the
    ``dashboard``) on ``host``:``port``; ``ready`` is called once connected and serving."""
    connection = SocketModeConnection(bolt_app, settings)
    try:
        connection.open()
        server = WebServer(make_health_app(lambda: connection.connected, dashboard), host, port)
        ready(server)
        server.serve_until_interrupted()
    finally:
        connection.close()


def _socket_logger() -> logging.Logger:
    """The Socket Mode client's logger, without its line about a refused apps.connections.open
    (several lines, Slack's whole answer): :meth:`SocketModeConnection.open` says it in one."""
    logger = logging.getLogger("worker.web.socket")
    if not any(isinstance(f, _QuietSocket) for f in logger.filters):
        logger.addFilter(_QuietSocket())
    return logger


class _QuietSocket(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to retrieve WSS URL")
