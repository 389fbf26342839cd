"""Marketing's part of the compliance report as a Slack message (and as lines for a terminal).

Pure: no I/O. Every piece of CRM text (sources, statuses, lead names) is escaped in markup.
"""

from __future__ import annotations

from worker.compliance import MarketingFigures
from worker.slack.messages import MAX_SECTION_CHARS, SlackMessage, escape


def render_marketing_report(m: MarketingFigures) -> SlackMessage:
    """One message for marketing's channel: pace, incomplete leads, sales feedback."""
    text = "\n".join(marketing_lines(m, markup=True))[:MAX_SECTION_CHARS]
    return SlackMessage(
        text=f"Marketing report: {m.delivered} of {m.quota} leads delivered in {m.month}.",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    )


def marketing_lines(m: MarketingFigures, *, markup: bool) -> list[str]:
    """The lines of marketing's part; ``markup``: Slack mrkdwn (bold, icons, escaped text)."""

    def safe(text: str) -> str:
        return escape(text) if markup else text

    bold = "*" if markup else ""
    pace = f"{m.delivered} of {m.quota} qualified leads delivered in {m.month}; " + (
        f"projected {m.projected} by month end ({m.pace_share:.0%} of quota)"
        if m.projected is not None and m.pace_share is not None
        else f"too early to project (day {m.day} of {m.days})"
    )
    lines = [
        f"{bold}Marketing: lead quota{bold}",
        (
            ":warning: Below pace: "
            if m.below_pace and markup
            else "BELOW PACE: "
            if m.below_pace
            else ""
        )
        + pace,
        "",
    ]
    for kind, segments in (("team", m.teams), ("source", m.sources)):
        for name, (delivered, quota, projected, below) in sorted(segments.items()):
            flag = (":warning: " if markup else "BELOW PACE: ") if below else ""
            outlook = (
                "" if projected is None else f", projected {projected} ({projected / quota:.0%})"
            )
            lines.append(f"• {flag}{kind} {safe(name)}: {delivered} of {quota}{outlook}")
    if m.teams or m.sources:
        lines.append("")
    lines.append(f"{bold}Incomplete leads handed to sales: {m.incomplete_total}{bold}")
    for lead_id, name, missing in m.incomplete:
        lines.append(f"• {safe(name)} ({lead_id}): missing {safe(', '.join(missing))}")
    if m.incomplete_total > len(m.incomplete):
        lines.append(f"…and {m.incomplete_total - len(m.incomplete)} more")
    lines.append("")
    lines.append(f"{bold}Sales feedback: leads returned, by source{bold}")
    if not m.returns_by_source:
        lines.append("none this month")
    for source, statuses in sorted(m.returns_by_source.items()):
        detail = ", ".join(f"{safe(s)} {n}" for s, n in statuses.most_common())
        lines.append(f"• {safe(source)}: {detail}")
    return lines
