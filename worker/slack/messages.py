"""Slack messages (Block Kit plus fallback text) rendered from notices. Pure: no I/O.

Every piece of CRM text goes through :func:`escape` before it enters mrkdwn, so a lead named
``<!channel>`` cannot ping a channel; links are built only from the configured record URL.
Limits relied on (docs.slack.dev/reference/block-kit/blocks): at most 50 blocks per message,
section text at most 3,000 characters; fallback ``text`` kept under 4,000 characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from worker.notices import OVERDUE, Notice, NoticeKind

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_TEXT_CHARS = 4000
#: Leads listed in one message; the rest are counted in a closing line (they are in the CRM).
MAX_LEADS_LISTED = 40
#: Total text of one message's blocks. Slack has refused messages near 13,000 characters
#: with msg_blocks_too_long (slackapi/bolt-js#2509); stay well below.
MAX_MESSAGE_CHARS = 11_000

_ICONS = {
    NoticeKind.WARNING: ":hourglass_flowing_sand:",
    NoticeKind.BREACH: ":red_circle:",
    NoticeKind.ESCALATION: ":rotating_light:",
    NoticeKind.RECYCLED: ":recycle:",
    NoticeKind.RESOLVED: ":white_check_mark:",
}


#: CRM text (a name, a company) longer than this is cut in messages: one runaway value must not
#: push a message over Slack's limits (a 5,000-character name once failed a 301-lead digest).
MAX_CRM_TEXT = 150


def clip(text: str, limit: int = MAX_CRM_TEXT) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut (before escaping)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only ``&``, ``<`` and ``>`` (api.slack.com/reference/surfaces/
    formatting#escaping). Control sequences like ``<!channel>`` become inert text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_LINK = re.compile(r"<([^<>|]+)\|([^<>]*)>")


def readable(text: str) -> str:
    """A message's mrkdwn as a person reads it in Slack: links as their label (and address),
    escaped characters as themselves (``&lt;!channel&gt;`` shows as ``<!channel>``)."""
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _plain(text: str) -> str:
    """CRM text for the fallback ``text``: escaped too (Slack parses it as mrkdwn as well)."""
    return escape(clip(" ".join(text.split())))


def format_local(at: datetime, timezone: str) -> str:
    """``Mon 30 Nov 09:30 CET``: the day matters to a rep reading on a phone."""
    local = at.astimezone(ZoneInfo(timezone))
    return local.strftime("%a %d %b %H:%M ") + (local.tzname() or timezone)


def _lead_label(notice: Notice, *, link: bool) -> str:
    name = escape(clip(notice.lead_name))
    if link and notice.record_url:
        # The URL comes from the admin's template and the CRM id; escape it all the same so
        # that a crafted id cannot close the link early.
        name = f"<{escape(notice.record_url)}|{name}>"
    label = f"*{name}*"
    if notice.company:
        label += f" ({escape(clip(notice.company))})"
    return label


def _headline(notice: Notice) -> str:
    title = notice.rule_title
    if notice.kind == NoticeKind.WARNING:
        return f"{title} due soon"
    if notice.kind == NoticeKind.RESOLVED:
        return f"{title}: done, late"
    if notice.kind == NoticeKind.RECYCLED:
        return title
    if notice.rule == "early_return":
        # Not a missed deadline but a lead handed back too soon: say that.
        what = "returned to marketing too early"
        return f"Escalation: {what}" if notice.kind == NoticeKind.ESCALATION else what.capitalize()
    if notice.kind == NoticeKind.ESCALATION:
        return f"Escalation: {title.lower()} overdue"
    return f"{title} overdue"


def _when(notice: Notice) -> str:
    when = format_local(notice.deadline_at, notice.timezone)
    if notice.kind == NoticeKind.WARNING:
        return f"due {when}"
    if notice.kind == NoticeKind.RECYCLED:
        return f"recycled {when}"
    return f"deadline was {when}"


def _line(notice: Notice) -> str:
    icon = _ICONS.get(notice.kind, "")
    parts = [f"{icon} {_headline(notice)}: {_lead_label(notice, link=True)}"]
    facts = [_when(notice)]
    if notice.priority:
        facts.append(f"priority {escape(clip(notice.priority))}")
    if notice.detail:
        facts.append(escape(clip(notice.detail, 2 * MAX_CRM_TEXT)))
    if notice.kind == NoticeKind.ESCALATION:
        facts.append(f"owner {escape(clip(notice.rep_name))}")
    parts.append(" · ".join(facts))
    return "\n".join(parts)


@dataclass(frozen=True)
class SlackMessage:
    """What is posted: Block Kit ``blocks`` plus the fallback ``text`` (notifications, screen
    readers)."""

    text: str
    blocks: list[dict[str, Any]]

    def to_payload(self) -> dict[str, Any]:
        """A ready-made message as an outbox payload (``Delivery.REPORT``)."""
        return {"text": self.text, "blocks": self.blocks}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SlackMessage:
        return cls(str(payload["text"]), list(payload.get("blocks") or []))


def render_notices(notices: Sequence[Notice]) -> SlackMessage:
    """One message for everything one recipient gets at once, oldest deadline first.

    A single notice reads as a single-lead reminder with what to do; several as a short list.
    """
    if not notices:
        raise ValueError("nothing to render")
    ordered = sorted(_distinct(notices)[0], key=lambda n: (n.deadline_at, n.lead_name))
    if len(ordered) == 1:
        return _render_single(ordered[0])
    return _render_list(ordered)


def _undeliverable_note(notices: Sequence[Notice]) -> str | None:
    """A fallback copy says whom it could not reach, so the reader knows why they got it."""
    missed = sorted(
        {(n.undeliverable_to, n.undeliverable_because) for n in notices if n.undeliverable_to}
    )
    if not missed:
        return None
    who = ", ".join(f"{escape(to or '')} ({escape(why or 'unknown reason')})" for to, why in missed)
    return f":warning: Could not deliver to {who}; sent to you instead."


def _render_single(notice: Notice) -> SlackMessage:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _line(notice)}}
    ]
    note = _undeliverable_note([notice])
    if note:
        blocks.insert(0, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if notice.kind != NoticeKind.RESOLVED:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(notice.action)}]}
        )
    text = (
        f"{_headline(notice)}: {_plain(notice.lead_name)}"
        + (f" ({_plain(notice.company)})" if notice.company else "")
        + f", {_when(notice)}. "
        + (escape(notice.action) if notice.kind != NoticeKind.RESOLVED else "")
    )
    return SlackMessage(text=text.strip()[:MAX_TEXT_CHARS], blocks=blocks)


def _render_list(notices: Sequence[Notice]) -> SlackMessage:
    # As many leads as fit both the count and the size budget (Slack refuses a message whose
    # blocks add up past ~13k characters); the rest are counted in a closing line.
    lines_shown: list[str] = []
    size = 0
    for notice in notices[:MAX_LEADS_LISTED]:
        line = _line(notice)
        if lines_shown and size + len(line) > MAX_MESSAGE_CHARS - 1000:
            break
        lines_shown.append(line)
        size += len(line)
    shown = notices[: len(lines_shown)]
    counts = {
        "overdue": sum(1 for n in notices if n.kind in OVERDUE),
        "due soon": sum(1 for n in notices if n.kind == NoticeKind.WARNING),
        "resolved": sum(1 for n in notices if n.kind == NoticeKind.RESOLVED),
        "recycled to marketing": sum(1 for n in notices if n.kind == NoticeKind.RECYCLED),
    }
    summary_bits = [f"{count} {what}" for what, count in counts.items() if count]
    summary = f"{len(notices)} leads need attention: " + ", ".join(summary_bits)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*"}}
    ]
    note = _undeliverable_note(notices)
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    for line in lines_shown:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
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


@dataclass(frozen=True)
class DigestPart:
    """One message of a digest and the positions (in the notices given) of the notices it
    lists: a part is delivered, and its notices count as sent, on its own."""

    message: SlackMessage
    carries: list[int]


def render_digest(notices: Sequence[Notice], *, at: datetime) -> list[SlackMessage]:
    """The digest's messages (see :func:`digest_parts`)."""
    return [part.message for part in digest_parts(notices, at=at)]


def digest_parts(notices: Sequence[Notice], *, at: datetime) -> list[DigestPart]:
    """A manager's digest: overdue leads grouped by rep, oldest deadline first, with counts
    per rule; split across as many messages as Slack's limits require, losing no lead.

    Limits relied on (docs.slack.dev/reference/block-kit/blocks): at most 50 blocks per
    message and 3,000 characters per section; and :data:`MAX_MESSAGE_CHARS` in all.
    """
    if not notices:
        raise ValueError("nothing to render")
    everything = notices
    notices, stands_for = _distinct(everything)
    timezone = notices[0].timezone
    by_rep: dict[str, list[tuple[int, Notice]]] = {}
    ordered = sorted(
        enumerate(notices), key=lambda p: (p[1].deadline_at, p[1].lead_name, p[1].lead_id)
    )
    for position, notice in ordered:
        by_rep.setdefault(notice.rep_name, []).append((position, notice))
    reps = sorted(by_rep, key=lambda rep: by_rep[rep][0][1].deadline_at)
    leads = len({n.lead_id for n in notices})
    per_rule: dict[str, int] = {}
    for notice in notices:
        per_rule[notice.rule_title] = per_rule.get(notice.rule_title, 0) + 1
    counts = " · ".join(f"{title}: {count}" for title, count in sorted(per_rule.items()))
    title = (
        f"Escalation digest, {format_local(at, timezone)}: {leads} overdue "
        f"{'lead' if leads == 1 else 'leads'} across {len(reps)} "
        f"{'rep' if len(reps) == 1 else 'reps'}"
    )
    # Full lines (with link, priority, detail) while they fit in one message; a manager
    # with many overdue leads gets compact lines first, and parts only when even those
    # do not fit (then nothing is left out).
    sections = _digest_sections(reps, by_rep, _digest_line)
    if sum(len(text) for text, _ in sections) > MAX_MESSAGE_CHARS - 600:
        sections = _digest_sections(reps, by_rep, _compact_digest_line)
    note = _undeliverable_note(notices)
    parts: list[list[tuple[str, list[int]]]] = [[]]
    size = 0
    budget_blocks = MAX_BLOCKS - 3  # title, counts and an optional note
    for text, carries in sections:
        if parts[-1] and (
            len(parts[-1]) >= budget_blocks or size + len(text) > MAX_MESSAGE_CHARS - 600
        ):
            parts.append([])
            size = 0
        parts[-1].append((text, carries))
        size += len(text)
    rendered = []
    for number, part in enumerate(parts, start=1):
        suffix = f" (part {number} of {len(parts)})" if len(parts) > 1 else ""
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*{suffix}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": counts}]},
        ]
        if note and number == 1:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": t}} for t, _ in part]
        message = SlackMessage(text=f"{title}{suffix}.", blocks=blocks)
        carried = [original for _, carries in part for p in carries for original in stands_for[p]]
        rendered.append(DigestPart(message, carried))
    return rendered


def _distinct(notices: Sequence[Notice]) -> tuple[list[Notice], list[list[int]]]:
    """Notices that say the same thing, once each — a level long due and its latest repeat,
    both found by the first run over a portal with history — and, for each, the positions in
    ``notices`` it stands for (so every outbox row is still carried by the message)."""
    index: dict[Notice, int] = {}
    stands_for: list[list[int]] = []
    for position, notice in enumerate(notices):
        if notice not in index:
            index[notice] = len(stands_for)
            stands_for.append([])
        stands_for[index[notice]].append(position)
    return list(index), stands_for


def _digest_sections(
    reps: Sequence[str],
    by_rep: dict[str, list[tuple[int, Notice]]],
    line_of: Callable[[Notice], str],
) -> list[tuple[str, list[int]]]:
    """Per rep a heading and one line per lead, cut into sections Slack accepts; each section
    with the positions of the notices it lists."""
    sections: list[tuple[str, list[int]]] = []
    for rep in reps:
        items = by_rep[rep]
        heading = f"*{escape(clip(rep))}*"
        lines = [f"{heading}: {len(items)} overdue"]
        carries: list[int] = []
        size = len(lines[0])
        for position, notice in items:
            line = line_of(notice)
            if size + len(line) + 1 > MAX_SECTION_CHARS:
                sections.append(("\n".join(lines), carries))
                lines, carries = [f"{heading} (continued)"], []
                size = len(lines[0])
            lines.append(line)
            carries.append(position)
            size += len(line) + 1
        sections.append(("\n".join(lines), carries))
    return sections


def _compact_digest_line(notice: Notice) -> str:
    local = notice.deadline_at.astimezone(ZoneInfo(notice.timezone))
    rule = _SHORT_RULES.get(notice.rule, notice.rule)
    return f"• {escape(clip(notice.lead_name))}: {rule} {local:%a %H:%M}"


_SHORT_RULES = {
    "first_touch": "1st touch",
    "follow_up": "follow-up",
    "max_gap": "gap",
    "min_time_spent": "time spent",
    "early_return": "early return",
}


def _digest_line(notice: Notice) -> str:
    bits = [
        f"• {_lead_label(notice, link=True)}",
        notice.rule_title.lower(),
        f"due {format_local(notice.deadline_at, notice.timezone)}",
    ]
    if notice.priority:
        bits.append(escape(clip(notice.priority)))
    if notice.detail:
        bits.append(escape(clip(notice.detail, 2 * MAX_CRM_TEXT)))
    return " · ".join(bits)


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
