"""Choosing the policy that governs a lead: the first policy whose match criteria all hold.

Pure: it looks only at the lead's own fields; it must never consult touches, the clock or config
files.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.sla.model import Lead, Policy, PolicyMatch


def matches(lead: Lead, match: PolicyMatch) -> bool:
    """Whether every given criterion of ``match`` holds for ``lead`` (None = any)."""
    if match.priorities is not None and lead.priority not in match.priorities:
        return False
    if match.sources is not None and lead.source not in match.sources:
        return False
    if match.lifecycle_stages is not None and lead.lifecycle_stage not in match.lifecycle_stages:
        return False
    if match.score_min is not None or match.score_max is not None:
        # A lead without a score cannot satisfy a score range.
        if lead.score is None:
            return False
        if match.score_min is not None and lead.score < match.score_min:
            return False
        if match.score_max is not None and lead.score > match.score_max:
            return False
    return True


def select_policy(lead: Lead, policies: Sequence[Policy]) -> Policy:
    """The first policy whose match holds; ValueError if none does."""
    for policy in policies:
        if matches(lead, policy.match):
            return policy
    raise ValueError(f"no policy matches lead {lead.id!r}; the last policy should match all")


def match_in_words(match: PolicyMatch) -> str:
    """The criteria as a plain phrase for explanations: "priority high, score 80..100"."""
    parts: list[str] = []
    for label, values in (
        ("priority", match.priorities),
        ("source", match.sources),
        ("lifecycle stage", match.lifecycle_stages),
    ):
        if values is not None:
            parts.append(f"{label} {' or '.join(sorted(values))}")
    if match.score_min is not None and match.score_max is not None:
        parts.append(f"score {match.score_min:g}..{match.score_max:g}")
    elif match.score_min is not None:
        parts.append(f"score >= {match.score_min:g}")
    elif match.score_max is not None:
        parts.append(f"score <= {match.score_max:g}")
    return ", ".join(parts) or "any lead"
