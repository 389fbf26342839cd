"""The answers to ``/sla`` commands, as mrkdwn text for an ephemeral reply. Pure: no I/O.

CRM text is escaped (``messages.escape``) and clipped like every other message, so a lead named
``<!channel>`` pings nobody; a reply never exceeds the text Slack advises for a message
(``messages.MAX_TEXT_CHARS``): a long timeline or list is cut and says what was left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from worker.leads import LeadLine
from worker.slack.messages import MAX_TEXT_CHARS, clip, escape, format_local

COMMAND = "/sla"
#: Leads ``/sla mine`` lists; the rest are counted (``sla-worker leads --rep`` lists them all).
MAX_MINE_LISTED = 25

USAGE = (
    f"*{COMMAND}* answers only you:\n"
    f"• `{COMMAND} explain <lead id, e-mail or CRM link>`: the lead's SLA timeline "
    "(its owner, their manager or an SLA admin)\n"
    f"• `{COMMAND} mine`: your open leads, most urgent first, with their next deadline\n"
    f"• `{COMMAND} away <until>`: you are away until a date (2026-12-24), for a while (3d), "
    "until tomorrow or a weekday (thu): your reminders go to your team's cover\n"
    f"• `{COMMAND} back`: you are back: your reminders come to you again\n"
    f"• `{COMMAND} help`: this list"
)


def usage(problem: str | None = None) -> str:
    """The usage, after what was wrong with the command (escaped: the user typed it)."""
    return f"{escape(problem)}\n\n{USAGE}" if problem else USAGE


def refusal(lead_id: str, who: str, doing: str = "see") -> str:
    """``You may not <doing> lead 1001: only <who> may.``"""
    return f"You may not {doing} lead {escape(lead_id)}: only {escape(who)} may."


def already_acknowledged(lead_name: str, by: str, at: str) -> str:
    """The answer to a click on a breach someone acknowledged before (``at`` formatted)."""
    return (
        f"*{escape(clip(lead_name))}*: this breach was already acknowledged by "
        f"{escape(clip(by, 80))} at {at}. Nothing changed."
    )


def not_current(
    lead_name: str, rule_title: str, what: str = "breach", to: str = "acknowledge"
) -> str:
    """The answer to a click on a breach (or warning) that is over (touched since, deadline
    moved): nothing ``to`` do."""
    return (
        f"*{escape(clip(lead_name))}*: this {escape(rule_title.lower())} {what} is no longer "
        f"open (the lead was touched since, or its deadline changed): nothing to {to}."
    )


def snooze_capped(chosen: str, until: str, max_snooze: str) -> str:
    """The answer to a snooze cut short by ``slack.max_snooze`` (times formatted)."""
    return (
        f"A snooze lasts at most {max_snooze} (`slack.max_snooze`): the reminders return "
        f"{until}, not {chosen}. The manager is still told on the escalation schedule."
    )


def no_touch_yet(lead_name: str, since: str) -> str:
    """The answer to *Logged a touch* when the CRM has none (``since`` formatted)."""
    return (
        f"*{escape(clip(lead_name))}*: no touch on this lead in the CRM since {since}. Log it "
        "in the CRM (a call, e-mail or meeting by you) and click again."
    )


def explain_reply(lead_id: str, timeline: str) -> str:
    """The ``explain`` timeline in a code block (its columns line up), cut at whole lines to
    fit; ``sla-worker explain`` prints it whole."""
    head = f"*Lead {escape(lead_id)}*: why it is where it is (`sla-worker explain` shows the same)"
    lines = escape(timeline).replace("```", "'''").splitlines()
    # What is always there: the head, the fences, and a note of how much was left out.
    budget = MAX_TEXT_CHARS - len(head) - 120
    kept: list[str] = []
    for line in lines:
        if sum(len(k) + 1 for k in kept) + len(line) + 1 > budget:
            break
        kept.append(line)
    text = f"{head}\n```\n" + "\n".join(kept) + "\n```"
    if len(kept) < len(lines):
        left = len(lines) - len(kept)
        text += f"\n…and {left} more lines: `sla-worker explain {escape(lead_id)}` prints them all."
    return text


def _deadline(line: LeadLine, timezone: str) -> str:
    if line.deadline_at is None:
        return "no open deadline"
    when = format_local(line.deadline_at, timezone)
    return f"was due {when}" if line.state == "breached" else f"due {when}"


def _lead_label(line: LeadLine, record_url: str | None) -> str:
    name = escape(clip(line.name))
    if record_url:
        # The URL is the admin's template and the CRM id; escaped all the same, so that a
        # crafted id cannot close the link early (as in messages._lead_label).
        name = f"<{escape(record_url.replace('{id}', line.lead_id))}|{name}>"
    label = f"*{name}*"
    if line.company:
        label += f" ({escape(clip(line.company))})"
    return label


def mine_reply(
    lines: Sequence[LeadLine],
    *,
    total: int,
    timezone: str,
    record_url: str | None,
    email: str,
    now: datetime,
) -> str:
    """The caller's open leads as ``worker.leads`` orders them (most urgent first), each with
    its state and next deadline in the caller's time zone; ``total`` counts them all."""
    if not lines:
        return (
            f"You own no open leads (as {escape(email)}, at {format_local(now, timezone)}). "
            "If that is wrong, your Slack e-mail may differ from the CRM's."
        )
    out = [f"*Your open leads ({total}), most urgent first:*"]
    for line in lines:
        state = f"{line.state} {line.rule}".strip() if line.state == "breached" else line.state
        item = (
            f"• {_lead_label(line, record_url)} · {escape(state)} · "
            f"{_deadline(line, timezone)} · id `{escape(line.lead_id)}`"
        )
        if sum(len(o) + 1 for o in out) + len(item) > MAX_TEXT_CHARS - 200:
            break
        out.append(item)
    shown = len(out) - 1
    if shown < total:
        out.append(
            f"…and {total - shown} more: `sla-worker leads --rep {escape(email)}` lists them all."
        )
    return "\n".join(out)
