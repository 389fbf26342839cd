"""Slack messages (Block Kit plus fallback text) rendered from notices. Pure: no I/O.

Every piece of CRM text goes through :func:`escape` before it enters mrkdwn, so a lead named
``<!channel>`` cannot ping a channel; links are built only from the configured record URL.
Limits relied on (docs.slack.dev/reference/block-kit/blocks): at most 50 blocks per message,
section text at most 3,000 characters; fallback ``text`` kept under 4,000 characters; a
button's text at most 75 characters, its ``value`` at most 2,000
(docs.slack.dev/reference/block-kit/block-elements/button-element).

A digest line about an overdue lead carries an *Acknowledge* button (``action_id``
:data:`ACKNOWLEDGE`, ``value`` the breach reference, ``notices.breach_reference``); when it is
clicked, :func:`with_acknowledgement` is the same message with that line acknowledged. A rep
reminder's warning or breach carries *Logged a touch* and *Snooze* buttons (:data:`TOUCHED`,
:data:`SNOOZE_1H`, :data:`SNOOZE_TOMORROW`, same ``value``) in an actions block under its line;
once one has done its work, :func:`with_reminder_note` is the message with those buttons
replaced by what was done.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from worker.notices import OVERDUE, SNOOZABLE, Notice, NoticeKind, breach_reference

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
    NoticeKind.ACKNOWLEDGED: ":ballot_box_with_check:",
}

#: The ``action_id`` of a digest line's *Acknowledge* button (``worker.web`` listens for it).
ACKNOWLEDGE = "acknowledge"
#: A button's ``value`` may hold 2,000 characters; a longer breach reference gets no button.
MAX_BUTTON_VALUE = 2000
#: What a line with a button adds to a message's size: the button's label and value now (a
#: breach reference is about 50 characters), the "Acknowledged by …" note that replaces it
#: later (:func:`with_acknowledgement`; a name is cut at :data:`MAX_NAME_CHARS`).
BUTTON_CHARS = 120
#: The ``action_id`` s of a rep reminder's *Snooze* buttons: for an hour (moved into working
#: hours), or until the next business day's opening.
SNOOZE_1H = "snooze_1h"
SNOOZE_TOMORROW = "snooze_tomorrow"
SNOOZES = (SNOOZE_1H, SNOOZE_TOMORROW)
#: The ``action_id`` of a rep reminder's *Logged a touch* button.
TOUCHED = "touched"
#: A rep reminder's buttons under a lead's line, in one actions block.
REMINDER_BUTTONS = (*SNOOZES, TOUCHED)
#: What an actions block with a reminder's buttons adds to a message's size (three labels and
#: breach references, the JSON around them), or the "Snoozed until …" note that replaces it.
CONTROLS_CHARS = 400
#: Names in an acknowledgement note are cut to this (a Slack real name can be long).
MAX_NAME_CHARS = 80
#: The ``action_id`` of the *Reassign* menu (a ``static_select``) on a rep reminder's line and
#: on a digest's overdue line; each option's ``value`` is :func:`reassign_value`.
REASSIGN = "reassign"
#: Slack's limits for a static_select (docs.slack.dev/reference/block-kit/block-elements/
#: select-menu-element, composition-objects/option-object): at most 100 options, an option's
#: text at most 75 characters and its value at most 150.
MAX_SELECT_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150


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
    if notice.kind == NoticeKind.ACKNOWLEDGED:
        by = escape(clip(notice.acknowledged_by or "someone", MAX_NAME_CHARS))
        return f"{title} overdue, acknowledged by {by}"
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
    if notice.kind == NoticeKind.ACKNOWLEDGED and notice.acknowledged_at is not None:
        return f"acknowledged {format_local(notice.acknowledged_at, notice.timezone)}"
    return f"deadline was {when}"


def _line(notice: Notice) -> str:
    icon = _ICONS.get(notice.kind, "")
    parts = [f"{icon} {_headline(notice)}: {_lead_label(notice, link=True)}"]
    facts = [_when(notice)]
    if notice.kind == NoticeKind.ACKNOWLEDGED:
        # Read on a phone: who and when is the news; the rest the rep was told before.
        return "\n".join((*parts, *facts))
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


#: Lead id → the teammates (display name, CRM owner id) its *Reassign* menu offers.
Teammates = Mapping[str, Sequence[tuple[str, str]]]


def render_notices(
    notices: Sequence[Notice], *, teammates: Teammates | None = None
) -> SlackMessage:
    """One message for everything one recipient gets at once, oldest deadline first.

    A single notice reads as a single-lead reminder with what to do; several as a short list.
    ``teammates``: a reminder's line about a lead listed there gets a *Reassign* menu.
    """
    if not notices:
        raise ValueError("nothing to render")
    ordered = sorted(_distinct(notices)[0], key=lambda n: (n.deadline_at, n.lead_name))
    if len(ordered) == 1:
        return _render_single(ordered[0], teammates or {})
    return _render_list(ordered, teammates or {})


def _undeliverable_note(notices: Sequence[Notice]) -> str | None:
    """A fallback copy says whom it could not reach, so the reader knows why they got it."""
    # A reminder of a rep who is away, handed to their cover (worker.pipeline.away).
    covering = sorted(
        {
            (n.rep_name, n.undeliverable_because or "")
            for n in notices
            if n.undeliverable_to and (n.undeliverable_because or "").startswith("away ")
        }
    )
    missed = sorted(
        {
            (n.undeliverable_to, n.undeliverable_because)
            for n in notices
            if n.undeliverable_to and not (n.undeliverable_because or "").startswith("away ")
        }
    )
    notes = [
        f":palm_tree: {escape(clip(rep, MAX_NAME_CHARS))} is {escape(why)} — you are covering:"
        for rep, why in covering
    ]
    if missed:
        who = ", ".join(
            f"{escape(to or '')} ({escape(why or 'unknown reason')})" for to, why in missed
        )
        notes.append(f":warning: Could not deliver to {who}; sent to you instead.")
    return " ".join(notes) or None


def _render_single(notice: Notice, teammates: Teammates) -> SlackMessage:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _line(notice)}}
    ]
    controls = _reminder_buttons_of(notice, teammates)
    if controls is not None:
        blocks.append(controls)
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


def _render_list(notices: Sequence[Notice], teammates: Teammates) -> SlackMessage:
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
        "acknowledged": sum(1 for n in notices if n.kind == NoticeKind.ACKNOWLEDGED),
    }
    summary_bits = [f"{count} {what}" for what, count in counts.items() if count]
    summary = f"{len(notices)} leads need attention: " + ", ".join(summary_bits)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*"}}
    ]
    note = _undeliverable_note(notices)
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    # A reminder's buttons under each line while the message has room for them (blocks and
    # size); a long list's last lines have none (each lead's own later reminder has them).
    closing = 1 if len(notices) > len(shown) else 0
    room = MAX_BLOCKS - len(blocks) - len(lines_shown) - closing
    for line, notice in zip(lines_shown, shown, strict=True):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
        if room <= 0:
            continue
        # With the Reassign menu while it fits, else the buttons alone.
        for controls in (_reminder_buttons_of(notice, teammates), _reminder_buttons_of(notice)):
            cost = CONTROLS_CHARS + _menu_chars(controls)
            if controls is not None and size + cost <= MAX_MESSAGE_CHARS - 500:
                blocks.append(controls)
                room -= 1
                size += cost
                break
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


def render_digest(
    notices: Sequence[Notice], *, at: datetime, teammates: Teammates | None = None
) -> list[SlackMessage]:
    """The digest's messages (see :func:`digest_parts`)."""
    return [part.message for part in digest_parts(notices, at=at, teammates=teammates)]


def digest_parts(
    notices: Sequence[Notice], *, at: datetime, teammates: Teammates | None = None
) -> list[DigestPart]:
    """A manager's digest: overdue leads grouped by rep, oldest deadline first, with counts
    per rule; split across as many messages as Slack's limits require, losing no lead.
    ``teammates``: an overdue line about a lead listed there gets a *Reassign* menu (in an
    actions block under it) while the full lines fit in one message with the menus.

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
    # Full lines (with link, priority, detail), each a section with its Acknowledge button,
    # while they fit in one message; a manager with many overdue leads gets compact lines
    # first (grouped per rep, no buttons: a button needs a section of its own, and a section
    # per lead would split a long digest into many parts), and parts only when even those
    # do not fit (then nothing is left out).
    sections = _line_sections(reps, by_rep, teammates or {})
    if teammates and sum(section.size for section in sections) > MAX_MESSAGE_CHARS - 600:
        sections = _line_sections(reps, by_rep, {})  # no room for the menus: buttons only
    if sum(section.size for section in sections) > MAX_MESSAGE_CHARS - 600:
        sections = _digest_sections(reps, by_rep, _compact_digest_line)
        counts += " · _a compact list: too many leads for Acknowledge buttons_"
    note = _undeliverable_note(notices)
    parts: list[list[_Section]] = [[]]
    size = count = 0
    budget_blocks = MAX_BLOCKS - 3  # title, counts and an optional note
    for section in sections:
        if parts[-1] and (
            count + section.blocks > budget_blocks or size + section.size > MAX_MESSAGE_CHARS - 600
        ):
            # A rep's heading goes with the rep's first lead into the next part.
            heading = [parts[-1].pop()] if len(parts[-1]) > 1 and parts[-1][-1].heading else []
            parts.append(heading)
            size = sum(s.size for s in heading)
            count = sum(s.blocks for s in heading)
        parts[-1].append(section)
        size += section.size
        count += section.blocks
    rendered = []
    for number, part in enumerate(parts, start=1):
        suffix = f" (part {number} of {len(parts)})" if len(parts) > 1 else ""
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*{suffix}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": counts}]},
        ]
        if note and number == 1:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        blocks += [block for section in part for block in section.rendered()]
        message = SlackMessage(text=f"{title}{suffix}.", blocks=blocks)
        carried = [i for section in part for p in section.carries for i in stands_for[p]]
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


@dataclass(frozen=True)
class _Section:
    """One section of a digest: its mrkdwn, the positions of the notices it lists, and the
    breach its *Acknowledge* button acknowledges (None: no button)."""

    text: str
    carries: list[int]
    acknowledges: str | None = None
    #: A rep's heading, kept with the rep's first line when the digest is split.
    heading: bool = False
    #: The line's *Reassign* menu (:func:`reassign_control`), in an actions block under it.
    reassign: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return (
            len(self.text)
            + (BUTTON_CHARS if self.acknowledges else 0)
            + (_menu_chars(self.reassign) + BUTTON_CHARS if self.reassign else 0)
        )

    @property
    def blocks(self) -> int:
        return 2 if self.reassign else 1

    def rendered(self) -> list[dict[str, Any]]:
        block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": self.text}}
        if self.acknowledges:
            block["accessory"] = acknowledge_button(self.acknowledges)
        if self.reassign is None:
            return [block]
        return [block, {"type": "actions", "elements": [self.reassign]}]


def acknowledge_button(reference: str) -> dict[str, Any]:
    """The *Acknowledge* button of a digest line about the breach ``reference``."""
    return {
        "type": "button",
        "action_id": ACKNOWLEDGE,
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "value": reference,
    }


def reminder_buttons(reference: str) -> dict[str, Any]:
    """The buttons of a rep reminder's line about the breach ``reference``: *Logged a touch*,
    *Snooze 1 h*, *Snooze until tomorrow*."""
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": TOUCHED,
                "text": {"type": "plain_text", "text": "Logged a touch"},
                "value": reference,
            },
            {
                "type": "button",
                "action_id": SNOOZE_1H,
                "text": {"type": "plain_text", "text": "Snooze 1 h"},
                "value": reference,
            },
            {
                "type": "button",
                "action_id": SNOOZE_TOMORROW,
                "text": {"type": "plain_text", "text": "Snooze until tomorrow"},
                "value": reference,
            },
        ],
    }


def reassign_value(lead_id: str, owner_id: str) -> str:
    """A *Reassign* option's value: the lead and the CRM owner chosen, ``1001|77``."""
    return f"{lead_id}|{owner_id}"


def parse_reassign_value(value: str) -> tuple[str, str] | None:
    """``(lead id, owner id)`` from an option Slack returned; None when it is not one (a
    forged or garbled value). The owner id is what follows the last bar."""
    lead_id, bar, owner_id = value.rpartition("|")
    if not bar or not lead_id or not owner_id:
        return None
    return lead_id, owner_id


def reassign_control(lead_id: str, teammates: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    """The *Reassign* menu for the lead ``lead_id``: a ``static_select`` with one option per
    teammate (display name, CRM owner id), sorted by name; the first
    :data:`MAX_SELECT_OPTIONS` only (Slack's limit: the caller logs when it cuts). None when
    there is no teammate to choose (or none whose value fits in an option)."""
    options = []
    for name, owner_id in sorted(teammates, key=lambda t: (t[0].casefold(), t[1])):
        value = reassign_value(lead_id, owner_id)
        if len(value) > MAX_OPTION_VALUE:
            continue
        label = clip(" ".join(name.split()) or owner_id, MAX_OPTION_TEXT)
        options.append({"text": {"type": "plain_text", "text": label}, "value": value})
        if len(options) == MAX_SELECT_OPTIONS:
            break
    if not options:
        return None
    return {
        "type": "static_select",
        "action_id": REASSIGN,
        "placeholder": {"type": "plain_text", "text": "Reassign to…"},
        "options": options,
    }


def _menu_chars(block_or_element: Mapping[str, Any] | None) -> int:
    """What a *Reassign* menu adds to a message's text (its placeholder and option labels, all
    counted as block text), found in an element or in an actions block's elements."""
    if block_or_element is None:
        return 0
    elements = block_or_element.get("elements") or [block_or_element]
    return sum(
        len(e["placeholder"]["text"]) + sum(len(o["text"]["text"]) for o in e["options"])
        for e in elements
        if e.get("action_id") == REASSIGN
    )


def _reminder_buttons_of(
    notice: Notice, teammates: Teammates | None = None
) -> dict[str, Any] | None:
    """The buttons under a warning's or a breach's line, with the *Reassign* menu when
    ``teammates`` lists the lead; None for other kinds (and for a reference too long for a
    button's value)."""
    if notice.kind not in SNOOZABLE:
        return None
    reference = breach_reference(notice.lead_id, notice.rule, notice.deadline_at)
    if len(reference) > MAX_BUTTON_VALUE:
        return None
    controls = reminder_buttons(reference)
    menu = _reassign_of(notice, teammates or {})
    if menu is not None:
        controls["elements"].append(menu)
    return controls


def _reassign_of(notice: Notice, teammates: Teammates) -> dict[str, Any] | None:
    chosen = teammates.get(notice.lead_id)
    return reassign_control(notice.lead_id, chosen) if chosen else None


def _line_sections(
    reps: Sequence[str], by_rep: dict[str, list[tuple[int, Notice]]], teammates: Teammates
) -> list[_Section]:
    """Per rep a heading, then each lead's full line in a section of its own, with an
    *Acknowledge* button when it announces a breach, and then a *Reassign* menu when
    ``teammates`` lists the lead."""
    sections: list[_Section] = []
    for rep in reps:
        items = by_rep[rep]
        sections.append(_Section(f"*{escape(clip(rep))}*: {len(items)} overdue", [], heading=True))
        for position, notice in items:
            reference = breach_reference(notice.lead_id, notice.rule, notice.deadline_at)
            button = notice.kind in OVERDUE and len(reference) <= MAX_BUTTON_VALUE
            menu = _reassign_of(notice, teammates) if notice.kind in OVERDUE else None
            sections.append(
                _Section(
                    _digest_line(notice), [position], reference if button else None, reassign=menu
                )
            )
    return sections


def _digest_sections(
    reps: Sequence[str],
    by_rep: dict[str, list[tuple[int, Notice]]],
    line_of: Callable[[Notice], str],
) -> list[_Section]:
    """Per rep a heading and one line per lead, cut into sections Slack accepts; each section
    with the positions of the notices it lists."""
    sections: list[_Section] = []
    for rep in reps:
        items = by_rep[rep]
        heading = f"*{escape(clip(rep))}*"
        lines = [f"{heading}: {len(items)} overdue"]
        carries: list[int] = []
        size = len(lines[0])
        for position, notice in items:
            line = line_of(notice)
            if size + len(line) + 1 > MAX_SECTION_CHARS:
                sections.append(_Section("\n".join(lines), carries))
                lines, carries = [f"{heading} (continued)"], []
                size = len(lines[0])
            lines.append(line)
            carries.append(position)
            size += len(line) + 1
        sections.append(_Section("\n".join(lines), carries))
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


def acknowledgement_note(by: str, at: datetime, timezone: str) -> str:
    """What a digest line says once its breach is acknowledged, in place of its button."""
    who = escape(clip(" ".join(by.split()), MAX_NAME_CHARS))
    return f"{_ICONS[NoticeKind.ACKNOWLEDGED]} Acknowledged by {who}, {format_local(at, timezone)}"


def with_acknowledgement(
    blocks: Sequence[Mapping[str, Any]], reference: str, note: str
) -> list[dict[str, Any]] | None:
    """A digest's blocks (as Slack returned them with a click) with every line about the
    breach ``reference`` acknowledged: its button gone, ``note`` under its text. None when
    no line has that button (the message changed, or it is not a digest). Slack's
    ``block_id`` s are left out: an updated message takes new ones (docs.slack.dev/reference/
    block-kit/blocks: "If a message is updated, use a new block_id")."""
    changed = False
    out: list[dict[str, Any]] = []
    for original in blocks:
        block = {k: v for k, v in original.items() if k != "block_id"}
        accessory = block.get("accessory") or {}
        if (
            block.get("type") == "section"
            and accessory.get("action_id") == ACKNOWLEDGE
            and accessory.get("value") == reference
        ):
            text = dict(block.get("text") or {"type": "mrkdwn", "text": ""})
            text["text"] = f"{text.get('text', '')}\n{note}"[:MAX_SECTION_CHARS]
            out.append({k: v for k, v in block.items() if k != "accessory"} | {"text": text})
            changed = True
        else:
            out.append(block)
    return out if changed else None


def snooze_note(by: str, until: datetime, timezone: str) -> str:
    """What a rep reminder's line says once its reminders are snoozed, in place of the buttons."""
    who = escape(clip(" ".join(by.split()), MAX_NAME_CHARS))
    return (
        f":zzz: Snoozed until {format_local(until, timezone)} by {who}. Reminders to the rep "
        "only: the manager is still told on the escalation schedule."
    )


def touch_found_note(at: datetime | None, timezone: str) -> str:
    """What a rep reminder's line says once *Logged a touch* found the touch in the CRM."""
    when = format_local(at, timezone) if at is not None else "in the CRM"
    return f"{_ICONS[NoticeKind.RESOLVED]} Touch found: {when}. No more reminders about it."


def with_reminder_note(
    blocks: Sequence[Mapping[str, Any]], reference: str, note: str
) -> list[dict[str, Any]] | None:
    """A rep reminder's blocks (as Slack returned them with a click) with the buttons of the
    breach ``reference`` (*Logged a touch*, *Snooze*) replaced by ``note``; None when no block
    has them. Slack's ``block_id`` s are left out, as in :func:`with_acknowledgement`."""
    changed = False
    out: list[dict[str, Any]] = []
    for original in blocks:
        block = {k: v for k, v in original.items() if k != "block_id"}
        elements = block.get("elements") or []
        if block.get("type") == "actions" and any(
            e.get("action_id") in REMINDER_BUTTONS and e.get("value") == reference for e in elements
        ):
            text = note[:MAX_SECTION_CHARS]
            out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
            changed = True
        else:
            out.append(block)
    return out if changed else None


def reassignment_note(to: str, by: str, at: datetime, timezone: str) -> str:
    """What a line says once its lead is reassigned from Slack, in place of its controls."""
    to_name = escape(clip(" ".join(to.split()), MAX_NAME_CHARS))
    who = escape(clip(" ".join(by.split()), MAX_NAME_CHARS))
    return (
        f":arrows_counterclockwise: Reassigned to {to_name} by {who}, {format_local(at, timezone)}."
    )


def with_reassignment(
    blocks: Sequence[Mapping[str, Any]], value: str, note: str
) -> list[dict[str, Any]] | None:
    """A message's blocks (as Slack returned them with a click) with the actions block that
    holds the *Reassign* menu of the lead the option ``value`` names replaced by ``note`` (a
    reminder's buttons go with it: the rep no longer owns the lead). None when no block has
    that menu. Slack's ``block_id`` s are left out, as in :func:`with_acknowledgement`."""
    chosen = parse_reassign_value(value)
    if chosen is None:
        return None
    prefix = f"{chosen[0]}|"
    changed = False
    out: list[dict[str, Any]] = []
    for original in blocks:
        block = {k: v for k, v in original.items() if k != "block_id"}
        elements = block.get("elements") or []
        if block.get("type") == "actions" and any(
            e.get("action_id") == REASSIGN
            and any(str(o.get("value", "")).startswith(prefix) for o in e.get("options") or [])
            for e in elements
        ):
            text = note[:MAX_SECTION_CHARS]
            out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
            changed = True
        else:
            out.append(block)
    return out if changed else None


def handed_over_message(
    lead: Notice, *, by: str, previous_owner: str | None, at: datetime, deadline: str | None
) -> SlackMessage:
    """The DM to a lead's new owner: who handed the lead over (``previous_owner`` None: ``by``
    owned it) and when, and what is due next (``deadline`` in words, like ``First touch due Tue
    24 Nov 11:42 CET``; None when nothing is due). ``lead`` carries the lead's name, company,
    link and the reader's time zone."""
    who = escape(clip(" ".join(by.split()), MAX_NAME_CHARS))
    how = f"{who} handed it to you"
    if previous_owner is not None:
        before = escape(clip(" ".join(previous_owner.split()), MAX_NAME_CHARS))
        how = f"{who} reassigned it to you from {before}"
    when = format_local(at, lead.timezone)
    line = f":arrows_counterclockwise: {_lead_label(lead, link=True)} is yours now: {how}, {when}."
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]
    if deadline:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": deadline}]})
    text = f"{_plain(lead.lead_name)} is yours now: {how}, {when}." + (
        f" {deadline}." if deadline else ""
    )
    return SlackMessage(text=text[:MAX_TEXT_CHARS], blocks=blocks)


def taken_over_message(lead: Notice, *, by: str, new_owner: str, at: datetime) -> SlackMessage:
    """The DM to a lead's previous owner when someone else reassigned it."""
    who = escape(clip(" ".join(by.split()), MAX_NAME_CHARS))
    after = escape(clip(" ".join(new_owner.split()), MAX_NAME_CHARS))
    when = format_local(at, lead.timezone)
    line = (
        f":arrows_counterclockwise: {who} reassigned {_lead_label(lead, link=True)} to {after}, "
        f"{when}. No more reminders about it to you."
    )
    text = f"{who} reassigned {_plain(lead.lead_name)} to {after}, {when}."
    return SlackMessage(
        text=text[:MAX_TEXT_CHARS],
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": line}}],
    )


def as_plain_text(message: SlackMessage) -> str:
    """The message as a person reads it in Slack: links shown as their label, entities decoded.

    For the demo and previews only; what is sent is ``message.blocks`` and ``message.text``.
    """
    lines: list[str] = []
    for block in message.blocks:
        if block.get("type") == "section":
            button = (block.get("accessory") or {}).get("text", {}).get("text")
            lines.append(_read(block["text"]["text"]) + (f"  [{button}]" if button else ""))
        elif block.get("type") == "context":
            lines.append("  " + " ".join(_read(e.get("text", "")) for e in block["elements"]))
        elif block.get("type") == "actions":
            labels = (
                e.get("text", {}).get("text", "") or e.get("placeholder", {}).get("text", "") + " ▾"
                for e in block.get("elements") or []
            )
            lines.append("  " + " ".join(f"[{label}]" for label in labels))
        elif block.get("type") == "header":
            lines.append(_read(block["text"]["text"]).upper())
    return "\n".join(lines) if lines else _read(message.text)


def _read(mrkdwn: str) -> str:
    text = re.sub(r"<([^|<>]+)\|([^<>]+)>", r"\2", mrkdwn)
    text = re.sub(r":[a-z_]+: ?", "", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
