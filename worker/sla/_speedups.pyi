"""Types of the compiled twin of ``worker.sla.evaluate.evaluate_lead`` (see _speedups.pyx)."""

from collections.abc import Sequence
from datetime import datetime

from worker.sla.calendar import BusinessCalendar
from worker.sla.model import (
    EscalationPolicy,
    Lead,
    LeadEvaluation,
    Policy,
    Touch,
    TouchRules,
)

SOURCE_SHA: str

def evaluate_lead(
    lead: Lead,
    touches: Sequence[Touch],
    policy: Policy,
    calendar: BusinessCalendar,
    touch_rules: TouchRules,
    escalation: EscalationPolicy,
    now: datetime,
) -> LeadEvaluation: ...
