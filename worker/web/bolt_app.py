"""The bolt app: what Slack may send ``POST /slack/events`` and who answers it.

Each listener acknowledges at once (Slack shows the user an error after three seconds without
an answer) and hands the request over (``handoff``), which queues the real work. Requests are
verified by bolt's ``RequestVerification`` middleware, which runs before every listener: a bad
``X-Slack-Signature`` or an ``X-Slack-Request-Timestamp`` more than five minutes off gets 401
and reaches no listener. Buttons (``block_actions``) are added the same way as the command:
``_acknowledge_then(app.action("<action_id>"), parse, submit)``; the buttons
``slack_actions.BUTTONS`` are (a digest line's *Acknowledge*, a rep reminder's *Snooze*, the
*Reassign* menu of both: a ``static_select``, whose choice bolt routes by ``action_id`` too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http.client import HTTPException
from typing import Any, TypeVar

from slack_bolt import Ack, App
from slack_bolt.error import BoltError
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from worker.errors import ConfigError, SlaWorkerError
from worker.pipeline.slack_actions import BUTTONS, BlockAction
from worker.pipeline.slack_commands import SlashCommand
from worker.settings import Settings
from worker.slack.replies import COMMAND

log = logging.getLogger(__name__)

_Request = TypeVar("_Request")
#: bolt's listener registration (``app.command("/sla")``, ``app.action("ack")``).
Register = Callable[[Callable[..., None]], Any]


def make_bolt_app(
    settings: Settings,
    submit_command: Callable[[SlashCommand], None],
    submit_action: Callable[[BlockAction], None],
    *,
    socket_mode: bool = False,
) -> App:
    """The app for one workspace (no OAuth): the bot token is checked now (``auth.test``).

    With ``socket_mode`` Slack's requests come over the WebSocket the worker itself opened
    with the app-level token (``worker.web.socket_mode``), not as HTTP posts: there is no
    signature to check and the signing secret is not needed. Bolt would take an empty one (it
    never builds the verifier then) and skips ``RequestVerification`` for Socket Mode requests
    anyway (``slack_bolt/middleware/request_verification``: ``_can_skip`` is
    ``mode == "socket_mode"``); it is turned off here so that no verifier with an empty secret
    exists at all, and "" is passed so that bolt does not read SLACK_SIGNING_SECRET itself."""
    if not socket_mode and not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set: without it no request can be told from a forgery "
            "(the Slack app's Basic Information page, App Credentials, has it)"
        )
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: the web service cannot talk to Slack")
    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    try:
        app = App(
            client=client,
            signing_secret="" if socket_mode else settings.slack_signing_secret,
            request_verification_enabled=not socket_mode,
            token_verification_enabled=True,
            logger=_bolt_logger(),
        )
    except BoltError as e:  # auth.test refused the token
        raise SlaWorkerError(f"Slack did not accept the bot token at start: {e}") from None
    except (SlackClientError, OSError, HTTPException) as e:
        raise SlaWorkerError(
            f"Slack did not answer at start ({settings.slack_api_url}): {type(e).__name__}"
        ) from None
    _acknowledge_then(app.command(COMMAND), SlashCommand.from_payload, submit_command)
    for action_id in BUTTONS:
        _acknowledge_then(app.action(action_id), BlockAction.from_payload, submit_action)
    return app


def _bolt_logger() -> logging.Logger:
    """Bolt's logger (bolt's own loggers copy its filters), without two of bolt's lines: the
    warning that the client's token wins over SLACK_BOT_TOKEN (bolt reads the variable itself;
    the client, pointed at SLACK_API_URL, has the same token), and the line about a request
    that did not verify, which holds its whole body: a replayed request's ``response_url`` and
    Slack's verification token. ``server`` logs a line of its own for those."""
    logger = logging.getLogger("worker.web.bolt")
    if not any(isinstance(f, _QuietBolt) for f in logger.filters):
        logger.addFilter(_QuietBolt())
    return logger


class _QuietBolt(logging.Filter):
    skipped = warning_client_prioritized_and_token_skipped()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return message != self.skipped and not message.startswith(
            "Invalid request signature detected"
        )


def _acknowledge_then(
    register: Register,
    parse: Callable[[Mapping[str, Any]], _Request],
    submit: Callable[[_Request], None],
) -> None:
    """Register a listener that acknowledges, then submits the request parsed from the body."""

    def listener(ack: Ack, body: dict[str, Any]) -> None:
        ack()  # an empty 200 now; the answer follows through the request's response_url
        submit(parse(body))

    register(listener)
