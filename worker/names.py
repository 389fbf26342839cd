"""How a person or a lead is named to people: one rule, used by every message, report and CLI line.

A full name when the CRM has one, else the e-mail, else the record id. Pure; no I/O.
"""

from __future__ import annotations


def display_name(first_name: str | None, last_name: str | None, *fallbacks: str | None) -> str:
    """``"Maria Lopez"``; without a name the first non-empty fallback (e-mail, then id)."""
    full = " ".join(part for part in (first_name, last_name) if part)
    return full or next((f for f in fallbacks if f), "")
