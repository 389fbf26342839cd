"""Answers through a request's ``response_url``: the temporary webhook Slack sends with every
slash command and interaction, which posts back to the person who asked.

Slack honours a ``response_url`` "up to 5 times within 30 minutes" of the request
(api.slack.com/interactivity/handling#message_responses); ``response_type: ephemeral`` makes
the message visible to that person only. No token is involved: the URL is the credential, so
it is never logged whole. Failures map onto ``worker.errors`` like the Web API client's.
"""

from __future__ import annotations

from datetime import timedelta
from http.client import HTTPException
from urllib.parse import urlsplit

from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from worker.errors import PermanentError, TransientError

#: How long the URL can be used: a reply queued longer than this cannot arrive.
RESPONSE_URL_LIFETIME = timedelta(minutes=30)


def _where(url: str) -> str:
    """The URL without its secret path, for messages: ``https://hooks.slack.com/…``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def reply_ephemeral(
    response_url: str, text: str, *, timeout: int = 10, beside_message: bool = False
) -> None:
    """Post ``text`` (mrkdwn) to the person behind ``response_url``, visible to them only.
    ``beside_message``: the URL came with a click on a message, which stays as it is
    (``replace_original: false``; without it, an answer to a button replaces the message the
    button is on for everyone: howdyai/botkit#446)."""
    if urlsplit(response_url).scheme not in ("https", "http"):
        raise PermanentError("response_url is not an http(s) URL", code="invalid_url")
    client = WebhookClient(response_url, timeout=timeout)
    try:
        response = client.send(
            text=text,
            response_type="ephemeral",
            replace_original=False if beside_message else None,
        )
    except (OSError, HTTPException) as e:
        raise TransientError(
            f"reply to {_where(response_url)}: {type(e).__name__}", code=type(e).__name__
        ) from None
    except SlackClientError as e:
        raise PermanentError(f"reply to {_where(response_url)}: {e}") from None
    status = response.status_code
    if status == 200:
        return
    # Slack names the problem in a short plain-text body: expired_url, used_url, no_text …
    code = (response.body or "").strip()[:100] or f"HTTP_{status}"
    message = f"reply to {_where(response_url)} failed with HTTP {status}: {code}"
    if status == 429 or status >= 500:
        raise TransientError(message, code=code)
    raise PermanentError(message, code=code)
