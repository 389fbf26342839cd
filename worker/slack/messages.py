"""Slack messages (Block Kit plus fallback text) rendered from notices. Pure: no I/O.

Every piece of CRM text goes through :func:`escape` before it enters mrkdwn, so a lead named
``<!channel>`` cannot ping a channel; links are built only from the configured record URL.
Limits relied on (docs.slack.dev/reference/block-kit/blocks): at most 50 blocks per message,
section text at most 3,000 characters; fallback ``text`` kept under 4,000 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from worker.notices import BREACH, ESCALATION, RESOLVED, WARNING, Notice

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_TEXT_CHARS = 4000
#: Leads listed in one message; the rest are counted in a closing line (they are in the CRM).
MAX_LEADS_LISTED = 40

_ICONS = {
    WARNING: ":hourglass_flowing_sand:",
    BREACH: ":red_circle:",
    ESCALATION: ":rotating_light:",
    RESOLVED: ":white_check_mark:",
}


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only ``&``, ``<`` and ``>`` (api.slack.com/reference/surfaces/
    formatting#escaping). Control sequences like ``<!channel>`` become inert text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str) -> str:
    """CRM text for the fallback ``text``: escaped too (Slack parses it as mrkdwn as well)."""
    return escape(" ".join(text.split()))


def format_local(at: datetime, timezone: str) -> str:
    """``Mon 30 Nov 09:30 CET``: the day matters to a rep reading on a phone."""
    local = at.astimezone(ZoneInfo(timezone))
    return local.strftime("%a %d %b %H:%M ") + (local.tzname() or timezone)


def _lead_label(notice: Notice, *, link: bool) -> str:
    name = escape(notice.lead_name)
    if link and notice.record_url:
        # The URL comes from the admin's template and the CRM id; escape it all the same so
        # that a crafted id cannot close the link early.
        name = f"<{escape(notice.record_url)}|{name}>"
    label = f"*{name}*"
    if notice.company:
        label += f" ({escape(notice.company)})"
    return label


def _headline(notice: Notice) -> str:
    title = notice.rule_title
    if notice.kind == WARNING:
        return f"{title} due soon"
    if notice.kind == RESOLVED:
        return f"{title}: done, late"
    if notice.kind == ESCALATION:
        return f"Escalation: {title.lower()} overdue"
    return f"{title} overdue"


def _when(notice: Notice) -> str:
    when = format_local(notice.deadline_at, notice.timezone)
    if notice.kind == WARNING:
        return f"due {when}"
    return f"deadline was {when}"


def _line(notice: Notice) -> str:
    icon = _ICONS.get(notice.kind, "")
    parts = [f"{icon} {_headline(notice)}: {_lead_label(notice, link=True)}"]
    facts = [_when(notice)]
    if notice.priority:
        facts.append(f"priority {escape(notice.priority)}")
    if notice.detail:
        facts.append(escape(notice.detail))
    if notice.kind == ESCALATION:
        facts.append(f"owner {escape(notice.rep_name)}")
    parts.append(" · ".join(facts))
    return "\n".join(parts)


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]


def render_notices(notices: Sequence[Notice]) -> SlackMessage:
    """One message for everything one recipient gets at once, oldest deadline first.

    A single notice reads as a single-lead reminder with what to do; several as a short list.
    """
    if not notices:
        raise ValueError("nothing to render")
    ordered = sorted(notices, key=lambda n: (n.deadline_at, n.lead_name))
    if len(ordered) == 1:
        return _render_single(ordered[0])
    return _render_list(ordered)


def _render_single(notice: Notice) -> SlackMessage:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _line(notice)[:MAX_SECTION_CHARS]}}
    ]
    if notice.kind != RESOLVED:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(notice.action)}]}
        )
    text = (
        f"{_headline(notice)}: {_plain(notice.lead_name)}"
        + (f" ({_plain(notice.company)})" if notice.company else "")
        + f", {_when(notice)}. "
        + (escape(notice.action) if notice.kind != RESOLVED else "")
    )
    return SlackMessage(text=text.strip()[:MAX_TEXT_CHARS], blocks=blocks)


def _render_list(notices: Sequence[Notice]) -> SlackMessage:
    shown = notices[:MAX_LEADS_LISTED]
    overdue = sum(1 for n in notices if n.kind in (BREACH, ESCALATION))
    due_soon = sum(1 for n in notices if n.kind == WARNING)
    summary_bits = []
    if overdue:
        summary_bits.append(f"{overdue} overdue")
    if due_soon:
        summary_bits.append(f"{due_soon} due soon")
    resolved = len(notices) - overdue - due_soon
    if resolved:
        summary_bits.append(f"{resolved} resolved")
    summary = f"{len(notices)} leads need attention: " + ", ".join(summary_bits)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*"}}
    ]
    for notice in shown:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _line(notice)[:MAX_SECTION_CHARS]},
            }
        )
    if len(notices) > len(shown):
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"…and {len(notices) - len(shown)} more in the CRM."}
                ],
            }
        )
    lines = [summary + "."]
    for notice in shown:
        lines.append(f"- {_headline(notice)}: {_plain(notice.lead_name)}, {_when(notice)}")
    return SlackMessage(text="\n".join(lines)[:MAX_TEXT_CHARS], blocks=blocks[:MAX_BLOCKS])


def as_plain_text(message: SlackMessage) -> str:
    """The message as a person reads it in Slack: links shown as their label, entities decoded.

    For the demo and previews only; what is sent is ``message.blocks`` and ``message.text``.
    """
    lines: list[str] = []
    for block in message.blocks:
        if block.get("type") == "section":
            lines.append(_read(block["text"]["text"]))
        elif block.get("type") == "context":
            lines.append("  " + " ".join(_read(e.get("text", "")) for e in block["elements"]))
        elif block.get("type") == "header":
            lines.append(_read(block["text"]["text"]).upper())
    return "\n".join(lines) if lines else _read(message.text)


def _read(mrkdwn: str) -> str:
    text = re.sub(r"<([^|<>]+)\|([^<>]+)>", r"\2", mrkdwn)
    text = re.sub(r":[a-z_]+: ?", "", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
