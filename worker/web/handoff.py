"""From the web service to the workers: a request Slack sent (a command, a button click)
becomes a Celery task.

The task goes to the ``deliver`` queue (``celery_app.QUEUE_OF``) and expires when the request's
``response_url`` does: an answer that can no longer arrive is not worked out. When the broker
cannot take it, the person is told at once through the ``response_url`` instead of waiting.
"""

from __future__ import annotations

import logging

from worker.errors import SlaWorkerError
from worker.pipeline.slack_actions import BlockAction
from worker.pipeline.slack_commands import SlashCommand
from worker.slack.response_url import RESPONSE_URL_LIFETIME, reply_ephemeral

log = logging.getLogger(__name__)


def submit_command(command: SlashCommand) -> None:
    """Queue ``worker.tasks.slack_command`` for ``command``."""
    from worker import tasks

    try:
        tasks.slack_command.apply_async(
            kwargs=command.as_task_kwargs(), expires=RESPONSE_URL_LIFETIME.total_seconds()
        )
    except Exception as e:  # kombu's and the transports' errors share no base class
        log.error("could not queue %s from %s: %s", command.command, command.user_id, e)
        try:
            reply_ephemeral(
                command.response_url,
                "The SLA worker could not take your command just now; try again in a minute.",
            )
        except SlaWorkerError as reply_error:
            log.error("could not tell %s either: %s", command.user_id, reply_error)


def submit_action(action: BlockAction) -> None:
    """Queue ``worker.tasks.slack_action`` for a button click."""
    from worker import tasks

    try:
        tasks.slack_action.apply_async(
            kwargs=action.as_task_kwargs(), expires=RESPONSE_URL_LIFETIME.total_seconds()
        )
    except Exception as e:  # kombu's and the transports' errors share no base class
        log.error("could not queue %s from %s: %s", action.action_id, action.user_id, e)
        try:
            reply_ephemeral(
                action.response_url,
                "The SLA worker could not take your click just now; try again in a minute.",
                beside_message=True,
            )
        except SlaWorkerError as reply_error:
            log.error("could not tell %s either: %s", action.user_id, reply_error)
