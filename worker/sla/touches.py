"""What counts as a touch: the sales activity that satisfies the SLA's clocks.

One function decides it for both the hot path and the explanations, so the two can never disagree.
It must never look at the clock or at other touches; timing (before the assignment, in the future)
is judged by the caller on integer instants.
"""

from __future__ import annotations

from worker.sla.model import Touch, TouchRules

NOT_A_TOUCH_KIND = "not a touch type"
ANOTHER_OWNER = "by someone other than the lead's current owner"
INBOUND = "inbound (the lead reached out): not a follow-up"
SHORT_CALL = "call shorter than the minimum"
BEFORE_ASSIGNMENT = "before the current owner's assignment"
EMAIL_NOT_SENT = {
    "BOUNCED": "e-mail bounced",
    "FAILED": "e-mail failed",
    "SCHEDULED": "e-mail only scheduled",
    "SENDING": "e-mail not sent yet",
}


def touch_ignored_because(touch: Touch, owner_id: str | None, rules: TouchRules) -> str | None:
    """None when ``touch`` counts for a lead owned by ``owner_id``, else the reason in words."""
    kind = touch.kind
    if kind not in rules.kinds:
        return NOT_A_TOUCH_KIND
    if touch.owner_id != owner_id:
        return ANOTHER_OWNER
    # An unknown direction counts as outbound: CRMs often leave it empty on logged calls.
    if rules.outbound_only and touch.direction == "inbound":
        return INBOUND
    if kind == "call":
        if touch.duration < rules.min_call:
            return SHORT_CALL
    elif kind == "email" and touch.status in rules.ignored_email_statuses:
        status = touch.status or ""
        return EMAIL_NOT_SENT.get(status) or f"e-mail status {status}"
    return None
