"""One lead's notice for message tests: Maria Lopez of Nordwind, Lena Fischer's, in Berlin."""

from __future__ import annotations

from typing import Any

from worker.notices import Notice, NoticeKind

MARIA: dict[str, Any] = {
    "kind": NoticeKind.BREACH,
    "rule": "first_touch",
    "lead_id": "42",
    "lead_name": "Maria Lopez",
    "company": "Nordwind Logistik GmbH",
    "priority": "HIGH",
    "record_url": "https://app.hubspot.com/contacts/1/record/0-1/42",
    "detail": "no touch yet",
    "level": 0,
    "policy": "hot",
    "rep_name": "Lena Fischer",
    "timezone": "Europe/Berlin",
}


def maria_notice(**fields: Any) -> Notice:
    """A first-touch breach to the rep (level 0) unless ``fields`` say otherwise; they must
    give its ``deadline_at``."""
    return Notice(**{**MARIA, **fields})
