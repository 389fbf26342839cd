"""``/sla`` commands from Slack, answered: who asked, what they may see, the answer sent back
to them alone through the command's ``response_url``, and one audit row per command.

``run(ctx, now, command)`` is what the Celery task ``worker.tasks.slack_command`` calls once
``sla-worker web`` has acknowledged the command; tests and tools call it without a broker. It
reads the store, asks Slack who the user is (``slack_callers.identify``: ``users.info``, cached
in the Slack user table), and writes only the audit (``actions``) and that cache: it never
changes a lead, a finding or the outbox. Subcommands are a table (:data:`SUBCOMMANDS`); every
answer that concerns one lead goes through the same permission rule (``worker.permissions``,
``slack_callers.access_to``) as the buttons (``slack_actions``).
"""

from __future__ import annotations

import html
import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.errors import SlaWorkerError
from worker.explain import explain_text
from worker.leads import list_leads
from worker.pipeline import away
from worker.pipeline.context import Context
from worker.pipeline.slack_callers import (
    Caller,
    SlackDirectory,
    access_to,
    identify,
    slack_client,
    team_of,
)
from worker.slack import replies
from worker.slack.messages import clip, escape
from worker.slack.response_url import reply_ephemeral
from worker.store.actions import note_reply_failed, record_action
from worker.store.db import session_scope
from worker.store.models import Lead

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlashCommand:
    """What the worker keeps of Slack's slash-command payload (a form body; the fields are
    listed in docs.slack.dev/interactivity/implementing-slash-commands)."""

    user_id: str
    text: str
    response_url: str
    command: str = replies.COMMAND

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SlashCommand:
        return cls(
            user_id=str(payload.get("user_id") or ""),
            text=str(payload.get("text") or ""),
            response_url=str(payload.get("response_url") or ""),
            command=str(payload.get("command") or replies.COMMAND),
        )

    def as_task_kwargs(self) -> dict[str, str]:
        """The task's arguments (JSON for the broker)."""
        return asdict(self)


@dataclass(frozen=True)
class CommandAnswer:
    """The reply (mrkdwn, for the caller only) and what the audit records."""

    text: str
    #: ``answered``, ``refused: …``, ``not found: …``, ``usage``.
    outcome: str
    lead_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, "lead_id": self.lead_id}


#: Posts ``text`` to a ``response_url`` for the caller only (``reply_ephemeral``).
Reply = Callable[[str, str], None]


def run(
    ctx: Context,
    now: datetime,
    command: SlashCommand,
    *,
    directory: SlackDirectory | None = None,
    reply: Reply = reply_ephemeral,
) -> CommandAnswer:
    """Answer ``command`` to its caller and audit it. A reply Slack refuses is noted in the
    audit and raised (the caller saw nothing; the Celery task is recorded as failed)."""
    caller = identify(ctx, now, command.user_id, directory or slack_client(ctx))
    answer = answer_command(ctx, now, command, caller)
    # Audited before the reply goes out: what was decided stays on record even if the reply
    # hangs until the task is killed.
    with session_scope(ctx.sessions) as session:
        action_id = record_action(
            session,
            at=now,
            slack_user_id=command.user_id,
            email=caller.email,
            action=f"{command.command} {command.text.strip()}".strip(),
            lead_id=answer.lead_id,
            outcome=answer.outcome,
        )
    try:
        reply(command.response_url, answer.text)
    except SlaWorkerError as e:
        with session_scope(ctx.sessions) as session:
            note_reply_failed(session, action_id, str(e))
        raise
    return answer


# -- what they asked --------------------------------------------------------------------------

#: ``(ctx, now, caller, arguments) -> answer`` for each subcommand.
Subcommand = Callable[[Context, datetime, Caller, str], CommandAnswer]


def answer_command(
    ctx: Context, now: datetime, command: SlashCommand, caller: Caller
) -> CommandAnswer:
    """The answer to ``command`` for ``caller`` (reads the store; sends nothing)."""
    name, _, arguments = command.text.strip().partition(" ")
    subcommand = SUBCOMMANDS.get(name.lower())
    if subcommand is None:
        if not name:
            return _help(ctx, now, caller, "")
        problem = f'"{name}" is not something {command.command} does.'
        return CommandAnswer(replies.usage(problem), "usage")
    if caller.email is None and subcommand is not _help:
        return CommandAnswer(
            "Slack did not tell the SLA worker your e-mail address, so it cannot tell which "
            "leads are yours: nothing can be shown.",
            "refused: no e-mail for the Slack user",
        )
    return subcommand(ctx, now, caller, arguments.strip())


def _help(ctx: Context, now: datetime, caller: Caller, arguments: str) -> CommandAnswer:
    return CommandAnswer(replies.usage(), "usage")


def _explain(ctx: Context, now: datetime, caller: Caller, arguments: str) -> CommandAnswer:
    if not arguments:
        return CommandAnswer(
            replies.usage("explain needs a lead: its id, its e-mail or its CRM link."), "usage"
        )
    agreement = ctx.agreement
    with session_scope(ctx.sessions) as session:
        lead_id, problem = find_lead(session, arguments, agreement.config.crm.record_url)
        if lead_id is None:
            return CommandAnswer(problem, "not found")
        access = access_to(session, ctx, lead_id)
    if not access.allows(caller.email):
        return CommandAnswer(replies.refusal(lead_id, access.who()), "refused", lead_id)
    try:
        timeline = explain_text(ctx, lead_id, now)
    except SlaWorkerError as e:  # gone since it was found (archived and pruned, merged)
        return CommandAnswer(escape(str(e)), "not found", lead_id)
    return CommandAnswer(replies.explain_reply(lead_id, timeline), "answered", lead_id)


def _mine(ctx: Context, now: datetime, caller: Caller, arguments: str) -> CommandAnswer:
    assert caller.email is not None  # answer_command refuses callers without one
    agreement = ctx.agreement
    with session_scope(ctx.sessions) as session:
        # Every one of the caller's leads in worker.leads' order, to count them; listed up to
        # the reply's size.
        lines = list_leads(session, rep=caller.email, limit=sys.maxsize)
        tz = caller.tz or team_of(session, ctx, caller.email).calendar.timezone
    text = replies.mine_reply(
        lines[: replies.MAX_MINE_LISTED],
        total=len(lines),
        timezone=tz,
        record_url=agreement.config.crm.record_url,
        email=caller.email,
        now=now,
    )
    note = away.away_note(ctx, now, caller.email, tz)
    if note is not None:
        text = f"{note}\n{text}"
    return CommandAnswer(text, f"answered: {len(lines)} leads")


def _away(ctx: Context, now: datetime, caller: Caller, arguments: str) -> CommandAnswer:
    return CommandAnswer(*away.away_answer(ctx, now, caller, arguments))


def _back(ctx: Context, now: datetime, caller: Caller, arguments: str) -> CommandAnswer:
    return CommandAnswer(*away.back_answer(ctx, now, caller, arguments))


SUBCOMMANDS: dict[str, Subcommand] = {
    "explain": _explain,
    "mine": _mine,
    "away": _away,
    "back": _back,
    "help": _help,
}


# -- leads and who may see them ---------------------------------------------------------------


#: Slack's markup around what a user typed when the command escapes links and e-mails
#: ("Escape channels, users, and links sent to your app"): ``<mailto:a@b.c|a@b.c>``,
#: ``<https://…|label>`` or ``<https://…>``.
_SLACK_LINK = re.compile(r"^<(?:mailto:)?([^<>|]+)(?:\|[^<>]*)?>$")


def find_lead(session: Session, reference: str, record_url: str | None) -> tuple[str | None, str]:
    """The stored lead a user means by ``reference``: its id, its e-mail, or a link to its CRM
    record (the config's ``crm.record_url`` with the id in place of ``{id}``). ``(lead id,
    "")``, or ``(None, why not)`` in words for the user."""
    text = html.unescape(reference.strip())
    link = _SLACK_LINK.match(text)
    if link:
        text = link.group(1).strip()
    shown = escape(clip(text, 200))
    if text.startswith(("https://", "http://")):
        lead_id = lead_id_from_link(text, record_url)
        if lead_id is None:
            if record_url is None:
                return None, "Links cannot be read: the config has no `crm.record_url`; use the id."
            return None, (
                f"{shown} is not a link to a CRM record like "
                f"{escape(record_url.replace('{id}', '<id>'))}."
            )
        text = lead_id
    elif "@" in text:
        return _lead_by_email(session, text, shown)
    if session.get(Lead, text) is None:
        return None, f"Lead {shown} is not in the store (has sync run? is the id right?)."
    return text, ""


def lead_id_from_link(url: str, record_url: str | None) -> str | None:
    """The id in a CRM record link made from ``record_url``; None when it is not one. A query
    string, a fragment or a trailing slash after the id is allowed (the CRM's own links)."""
    if record_url is None:
        return None
    before, _, after = record_url.partition("{id}")
    pattern = re.escape(before) + r"(?P<id>[^/?#]+)" + re.escape(after) + r"/?(?:[?#].*)?"
    match = re.fullmatch(pattern, url.strip())
    return match.group("id") if match else None


def _lead_by_email(session: Session, email: str, shown: str) -> tuple[str | None, str]:
    leads = session.scalars(
        select(Lead.id)
        .where(func.lower(Lead.email) == email.lower(), Lead.archived.is_(False))
        .order_by(Lead.id)
        .limit(6)
    ).all()
    if not leads:
        return None, f"No tracked lead has the e-mail {shown}."
    if len(leads) > 1:
        ids = ", ".join(f"`{escape(i)}`" for i in leads[:5])
        more = " and more" if len(leads) > 5 else ""
        return None, f"Several leads have the e-mail {shown}: {ids}{more}. Use one's id."
    return leads[0], ""
