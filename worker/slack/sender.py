"""What deliver needs from Slack, as an interface: :class:`SlackClient` is the real one, and
:class:`RecordingSender` the one a dry run uses (it posts nothing and remembers what it was given).

Stages depend on :class:`SlackSender`, never on ``slack_sdk``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from worker.slack.client import SentMessage, SlackUser


class SlackSender(Protocol):
    def lookup_user_by_email(self, email: str) -> SlackUser | None: ...

    def post_message(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, object]] | None = None,
        thread_ts: str | None = None,
    ) -> SentMessage: ...

    def check_auth(self) -> None:
        """AuthError unless Slack accepts the token (``auth.test``)."""
        ...

    def upload_files(
        self, channel: str, comment: str, files: Sequence[tuple[str, str, bytes]]
    ) -> str:
        """Share files (name, title, content) in a channel with a comment; an id of the post."""
        ...


@dataclass
class RecordingSender:
    """Accepts every message without sending it: each person is "found" under their e-mail
    (no time zone, so nothing is held for quiet hours) and each post is remembered."""

    posted: list[tuple[str, str]] = field(default_factory=list)
    uploaded: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def lookup_user_by_email(self, email: str) -> SlackUser | None:
        return SlackUser(id=f"email:{email}", name=email, tz=None, deleted=False)

    def check_auth(self) -> None:
        pass  # nothing is sent, so no token is needed

    def post_message(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, object]] | None = None,
        thread_ts: str | None = None,
    ) -> SentMessage:
        self.posted.append((channel, text))
        return SentMessage(channel, f"dry-run.{len(self.posted)}")

    def upload_files(
        self, channel: str, comment: str, files: Sequence[tuple[str, str, bytes]]
    ) -> str:
        self.uploaded.append((channel, comment, [name for name, _, _ in files]))
        return f"dry-run-file.{len(self.uploaded)}"
