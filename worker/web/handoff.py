"""From the web service to the workers: a request Slack sent (a command, a button click)
becomes a Celery task.

The task goes to the ``deliver`` queue (``celery_app.QUEUE_OF``) and expires when the request's
``response_url`` does: an answer that can no longer arrive is not worked out. When the broker
cannot take it, the person is told at once through the ``response_url`` instead of waiting.
"""

from __future__ import annotations

import logging
from typing import Any

from worker.errors import SlaWorkerError
from worker.pipeline.slack_actions import BlockAction
from worker.pipeline.slack_commands import SlashCommand
from worker.slack.response_url import RESPONSE_URL_LIFETIME, reply_ephemeral

log = logging.getLogger(__name__)


def submit_command(command: SlashCommand) -> None:
    """Queue ``worker.tasks.slack_command`` for ``command``."""
    from worker import tasks

    _queue(
        tasks.slack_command,
        command.as_task_kwargs(),
        command.response_url,
        f"{command.command} from {command.user_id}",
        "The SLA worker could not take your command just now; try again in a minute.",
    )


def submit_action(action: BlockAction) -> None:
    """Queue ``worker.tasks.slack_action`` for a button click."""
    from worker import tasks

    _queue(
        tasks.slack_action,
        action.as_task_kwargs(),
        action.response_url,
        f"{action.action_id} from {action.user_id}",
        "The SLA worker could not take your click just now; try again in a minute.",
        beside_message=True,
    )


def _queue(
    task: Any,
    kwargs: dict[str, Any],
    response_url: str,
    what: str,
    sorry: str,
    *,
    beside_message: bool = False,
) -> None:
    """Queue ``task``, expiring with the response URL; when the broker refuses it, tell the
    person (``sorry``) through that URL at once."""
    try:
        task.apply_async(kwargs=kwargs, expires=RESPONSE_URL_LIFETIME.total_seconds())
    except Exception as e:  # kombu's and the transports' errors share no base class
        log.error("could not queue %s: %s", what, e)
        try:
            reply_ephemeral(response_url, sorry, beside_message=beside_message)
        except SlaWorkerError as reply_error:
            log.error("could not tell %s either: %s", what.rsplit(" ", 1)[-1], reply_error)
