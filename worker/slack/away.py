"""The messages about reps who are away: the manager's warning before an away rep's leads
breach, and the ``/sla away`` / ``/sla back`` answers. Pure: no I/O. CRM text is escaped and
clipped as in every other message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.notices import rule_title
from worker.slack.messages import (
    MAX_BLOCKS,
    MAX_TEXT_CHARS,
    SlackMessage,
    clip,
    escape,
    format_local,
    reassign_control,
)

#: Leads listed in a warning, each a line and a Reassign menu (two blocks); the rest are
#: counted. Leaves room in Slack's 50 blocks for the head and the closing lines.
MAX_WARNED_LISTED = 20


@dataclass(frozen=True)
class LeadAtRisk:
    """One lead of an away rep that falls due before they are back."""

    lead_id: str
    name: str
    company: str | None
    record_url: str | None
    rule: str
    deadline_at: datetime


def _label(lead: LeadAtRisk) -> str:
    name = escape(clip(lead.name))
    if lead.record_url:
        name = f"<{escape(lead.record_url)}|{name}>"
    label = f"*{name}*"
    if lead.company:
        label += f" ({escape(clip(lead.company))})"
    return label


def away_warning(
    rep_name: str,
    until: str,
    covered_by: str | None,
    leads: Sequence[LeadAtRisk],
    timezone: str,
    teammates: Sequence[tuple[str, str]] = (),
) -> SlackMessage:
    """The manager's one warning about an away rep's leads that fall due before they are back:
    each lead with its deadline in ``timezone`` (the manager's) and a *Reassign* menu of the
    rep's ``teammates`` (display name, CRM owner id) when there are any. ``until`` is in words
    (``until Thu 24 Dec``)."""
    if not leads:
        raise ValueError("nothing to warn about")
    rep = escape(clip(rep_name, 80))
    ordered = sorted(leads, key=lambda lead: (lead.deadline_at, lead.name, lead.lead_id))
    shown = ordered[:MAX_WARNED_LISTED]
    count = f"{len(ordered)} of their leads fall" if len(ordered) > 1 else "1 of their leads falls"
    head = f":palm_tree: *{rep} is away {escape(until)}*: {count} due before then. " + (
        "Reassign them, or they breach while nobody works on them."
        if len(ordered) > 1
        else "Reassign it, or it breaches while nobody works on it."
    )
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    for lead in shown:
        line = (
            f"{_label(lead)} · {escape(rule_title(lead.rule).lower())} due "
            f"{format_local(lead.deadline_at, timezone)} · id `{escape(lead.lead_id)}`"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
        control = reassign_control(lead.lead_id, teammates)
        if control is not None:
            # In an actions block of its own, as on a reminder: a choice replaces it with who
            # reassigned the lead to whom (``messages.with_reassignment``).
            blocks.append({"type": "actions", "elements": [control]})
    closing = []
    if len(ordered) > len(shown):
        closing.append(f"…and {len(ordered) - len(shown)} more in the CRM.")
    cover = f"their reminders go to {escape(covered_by)}" if covered_by else "nobody covers them"
    closing.append(f"While {rep} is away {cover}. You are told once per lead.")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " ".join(closing)}]})
    text = f"{rep_name} is away {until}: {count} due before then: " + ", ".join(
        f"{lead.name} (due {format_local(lead.deadline_at, timezone)})" for lead in shown
    )
    return SlackMessage(text=text[:MAX_TEXT_CHARS], blocks=blocks[:MAX_BLOCKS])


def away_reply(until: str, covered_by: str | None) -> str:
    """The answer to ``/sla away``: the end as understood, and who gets the reminders."""
    who = escape(covered_by) if covered_by else "your manager"
    return (
        f":palm_tree: You are away {escape(until)}. Your reminders go to {who} meanwhile, and "
        "your manager is warned before any of your leads would breach. `/sla back` ends it."
    )


def back_reply(ended: int, still: str | None) -> str:
    """The answer to ``/sla back``; ``still``: what else says the rep is away (their Slack
    status, the config), in words."""
    text = (
        "Welcome back: your reminders come to you again."
        if ended
        else ("You were not away by `/sla away`: nothing to end.")
    )
    if still:
        text += (
            f" But {escape(still)} still says you are away: change it, or your reminders keep "
            "going to your cover."
        )
    return text
