"""The pure SLA engine: (lead, touches, policy, calendar, now) -> SLA state.

Everything else in the worker calls it; it must never do I/O, import the ORM, Celery or a CRM
client, log, or read the clock (``now`` is always an argument). Datetimes in and out are aware UTC.
"""

from worker.sla.calendar import BusinessCalendar
from worker.sla.evaluate import evaluate_lead, explain_lead
from worker.sla.model import (
    Escalation,
    EscalationLevel,
    EscalationPolicy,
    EscalationStep,
    FollowUp,
    Lead,
    LeadEvaluation,
    Policy,
    PolicyMatch,
    Rule,
    RuleResult,
    RuleState,
    StatusChange,
    TimelineEntry,
    Touch,
    TouchRules,
)
from worker.sla.policies import select_policy
from worker.sla.spans import BusinessSpan

__all__ = [
    "BusinessCalendar",
    "BusinessSpan",
    "Escalation",
    "EscalationLevel",
    "EscalationPolicy",
    "EscalationStep",
    "FollowUp",
    "Lead",
    "LeadEvaluation",
    "Policy",
    "PolicyMatch",
    "Rule",
    "RuleResult",
    "RuleState",
    "StatusChange",
    "TimelineEntry",
    "Touch",
    "TouchRules",
    "evaluate_lead",
    "explain_lead",
    "select_policy",
]
