"""Delivery to Slack: the Web API client (``client``) and message rendering (``messages``).

Everything that talks to Slack goes through :class:`SlackClient`, which maps Slack's answers
onto ``worker.errors``; nothing here knows about SLAs or holds the token anywhere it could be
printed.
"""

from __future__ import annotations

from worker.slack.client import SentMessage, SlackClient, SlackUser

__all__ = ["SentMessage", "SlackClient", "SlackUser"]
