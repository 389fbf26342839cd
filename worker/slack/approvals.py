"""The recycle approval request (``recycle.approval: required``): Block Kit for the message
that asks the approval channel to approve or keep each lead a recycle run found due. Pure: no
I/O; CRM text is clipped and escaped (``messages.escape``) like every other message.

Each lead is a section (name linked to the CRM, company, owner, why it is due) with an actions
block under it: *Approve* (``action_id`` :data:`APPROVE`) and *Keep* (:data:`KEEP`), ``value``
the proposal's id. Once a lead is decided, its buttons are replaced by what was decided, by
whom and when, and later what the run did. *Approve all* (:data:`APPROVE_ALL`, ``value`` the
request's key) closes the message while two or more of its leads wait.

Slack takes at most 50 blocks per message: a request lists at most :data:`LEADS_PER_REQUEST`
leads (two blocks each, plus a heading, a context line and *Approve all*) and fewer when their
text would make the message too long; a run with more due leads posts its request in parts,
each with its own *Approve all*. No lead is ever listed without its buttons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.slack.messages import (
    MAX_CRM_TEXT,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_SECTION_CHARS,
    MAX_TEXT_CHARS,
    SlackMessage,
    clip,
    escape,
    format_local,
)

#: The ``action_id`` s of the request's buttons (``sla-worker web`` listens for them).
APPROVE = "recycle_approve"
KEEP = "recycle_keep"
APPROVE_ALL = "recycle_approve_all"
APPROVAL_BUTTONS = (APPROVE, KEEP, APPROVE_ALL)
#: Leads one request message lists: 2 blocks each + heading + context + Approve all ≤ 50.
LEADS_PER_REQUEST = 20
#: What a lead adds to a message besides its line: its two buttons now, or the note that
#: replaces them later (a name cut at ``MAX_NAME_CHARS``, a time, an outcome).
LEAD_CONTROLS_CHARS = 300


@dataclass(frozen=True)
class ProposedLead:
    """One line of a request: the lead as proposed, and where its proposal stands."""

    proposal_id: int
    lead_name: str
    company: str | None
    owner_name: str
    reason: str
    record_url: str | None
    #: None (waiting) | approve | keep | timeout-approve | timeout-keep
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    #: When the proposal was closed, and what came of it (``recycled (run …)``, …).
    closed_at: datetime | None = None
    outcome: str = ""

    @property
    def waiting(self) -> bool:
        return self.decision is None and self.closed_at is None


def line_chars(lead: ProposedLead) -> int:
    """What a lead costs in a message's size budget (its line and its controls or note)."""
    return len(_line(lead)) + LEAD_CONTROLS_CHARS


def request_parts(leads: Sequence[ProposedLead]) -> list[list[ProposedLead]]:
    """The leads cut into requests Slack accepts: at most :data:`LEADS_PER_REQUEST` each,
    and no more text than a message may carry; in order, none left out."""
    parts: list[list[ProposedLead]] = []
    current: list[ProposedLead] = []
    size = 0
    for lead in leads:
        cost = line_chars(lead)
        if current and (
            len(current) == LEADS_PER_REQUEST or size + cost > MAX_MESSAGE_CHARS - 1500
        ):
            parts.append(current)
            current, size = [], 0
        current.append(lead)
        size += cost
    if current:
        parts.append(current)
    return parts


def render_request(
    leads: Sequence[ProposedLead],
    *,
    request_key: str,
    expires_at: datetime,
    default: str,
    timezone: str,
    part: int = 1,
    parts: int = 1,
) -> SlackMessage:
    """The request message for ``leads`` as their proposals stand now (the same function
    renders it first and each time it is updated in place)."""
    waiting = [lead for lead in leads if lead.waiting]
    count = f"{len(leads)} {'lead is' if len(leads) == 1 else 'leads are'}"
    of_parts = f" (part {part} of {parts})" if parts > 1 else ""
    heading = (
        f":recycle: *Recycle approval{of_parts}*: {count} due to go back to marketing. "
        "Approve or keep each (the owner's manager or an SLA admin)."
    )
    default_words = "approved" if default == "approve" else "kept"
    deadline = format_local(expires_at, timezone)
    if waiting:
        context = (
            f"{len(waiting)} waiting. Unanswered by {deadline}: {default_words} "
            "(`recycle.approval_default`). Approved leads go back at the next recycle run."
        )
    else:
        context = "Every lead here is decided. Approved leads go back at the next recycle run."
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": heading}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
    for lead in leads:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _line(lead)}})
        if lead.waiting:
            blocks.append(_buttons(lead.proposal_id))
        else:
            note = decision_note(lead, timezone)[:MAX_SECTION_CHARS]
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if len(waiting) >= 2:
        blocks.append(_approve_all(request_key, len(waiting)))
    names = ", ".join(escape(clip(" ".join(lead.lead_name.split()))) for lead in leads)
    text = (
        f"Recycle approval{of_parts}: {count} due to go back to marketing: {names}. "
        "Approve or keep each in Slack."
    )
    return SlackMessage(text=text[:MAX_TEXT_CHARS], blocks=blocks)


def _line(lead: ProposedLead) -> str:
    name = escape(clip(lead.lead_name))
    if lead.record_url:
        # The URL comes from the admin's template and the CRM id; escaped all the same so
        # that a crafted id cannot close the link early.
        name = f"<{escape(lead.record_url)}|{name}>"
    label = f"*{name}*"
    if lead.company:
        label += f" ({escape(clip(lead.company))})"
    owner = escape(clip(lead.owner_name))
    why = escape(clip(" ".join(lead.reason.split()), 2 * MAX_CRM_TEXT)) or "due"
    return f"{label} · owner {owner}\nWhy: {why}"


def _buttons(proposal_id: int) -> dict[str, Any]:
    value = str(proposal_id)
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": value,
            },
            {
                "type": "button",
                "action_id": KEEP,
                "text": {"type": "plain_text", "text": "Keep"},
                "value": value,
            },
        ],
    }


def _approve_all(request_key: str, waiting: int) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ALL,
                "text": {"type": "plain_text", "text": f"Approve all {waiting}"},
                "value": request_key,
                # One tap on a phone must not send a whole list back to marketing.
                "confirm": {
                    "title": {"type": "plain_text", "text": "Approve all?"},
                    "text": {
                        "type": "plain_text",
                        "text": f"The {waiting} leads still waiting here go back to marketing "
                        "at the next recycle run (those you may decide).",
                    },
                    "confirm": {"type": "plain_text", "text": "Approve all"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            }
        ],
    }


def decision_note(lead: ProposedLead, timezone: str) -> str:
    """What a decided (or closed) lead shows in place of its buttons."""
    who = escape(clip(" ".join((lead.decided_by or "someone").split()), MAX_NAME_CHARS))
    when = format_local(lead.decided_at, timezone) if lead.decided_at else ""
    if lead.decision == "approve":
        note = f":white_check_mark: Approved by {who}, {when}."
    elif lead.decision == "keep":
        note = f":hand: Kept by {who}, {when}: stays with {escape(clip(lead.owner_name))}."
    elif lead.decision == "timeout-approve":
        note = f":hourglass: Unanswered by {when}: approved (`recycle.approval_default`)."
    elif lead.decision == "timeout-keep":
        note = f":hourglass: Unanswered by {when}: kept (`recycle.approval_default`)."
    else:
        note = ":leftwards_arrow_with_hook: Withdrawn"
        if lead.outcome:
            note += f": {escape(clip(lead.outcome, 2 * MAX_CRM_TEXT))}"
        return note + "."
    if lead.decision in ("approve", "timeout-approve"):
        if lead.closed_at is None:
            note += " Goes back to marketing at the next recycle run."
        elif lead.outcome.startswith("recycled"):
            since = format_local(lead.closed_at, timezone)
            note += f" :recycle: Back with marketing since {since}."
        else:
            note += f" Not written back: {escape(clip(lead.outcome, 2 * MAX_CRM_TEXT))}."
    return note


def already_decided(lead: ProposedLead, timezone: str) -> str:
    """The answer to a click on a lead decided (or closed) before."""
    name = escape(clip(lead.lead_name))
    if lead.decision is None:
        return f"*{name}* is no longer waiting for approval ({decision_note(lead, timezone)}) " + (
            "Nothing changed."
        )
    words = {
        "approve": "approved",
        "keep": "kept",
        "timeout-approve": "approved by default",
        "timeout-keep": "kept by default",
    }[lead.decision]
    who = escape(clip(" ".join((lead.decided_by or "someone").split()), MAX_NAME_CHARS))
    at = format_local(lead.decided_at, timezone) if lead.decided_at else "an earlier run"
    by = "after the timeout" if lead.decision.startswith("timeout") else f"by {who}"
    return f"*{name}*: already {words} {by} at {at}. Nothing changed."
