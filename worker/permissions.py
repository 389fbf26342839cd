"""Who may act on a lead from Slack: its owner, the manager of the owner's team, or an admin
the config names (``slack.admins``). Pure: people are compared by e-mail, case ignored; no I/O.

The same rule answers every command and action about one lead (``/sla explain`` now; buttons
later), so a refusal always names the same people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def _same(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.strip().lower() == b.strip().lower())


@dataclass(frozen=True)
class LeadAccess:
    """The people who may act on one lead. ``owner_name`` is for the refusal's wording."""

    owner_email: str | None
    owner_name: str | None
    manager_email: str | None
    admins: tuple[str, ...] = ()

    def allows(self, email: str | None) -> bool:
        """Whether the person with this (Slack profile) e-mail may act; None: nobody known."""
        if email is None:
            return False
        return (
            _same(email, self.owner_email)
            or _same(email, self.manager_email)
            or any(_same(email, admin) for admin in self.admins)
        )

    def who(self) -> str:
        """The people who may, in words: ``its owner Lena Fischer, their manager anna@…
        or an SLA admin``."""
        people = []
        if self.owner_email:
            people.append(f"its owner {self.owner_name or self.owner_email}")
        if self.manager_email:
            people.append(f"their manager {self.manager_email}" if people else self.manager_email)
        people.append("an SLA admin (slack.admins in the config)")
        return people[0] if len(people) == 1 else ", ".join(people[:-1]) + " or " + people[-1]


def lead_access(
    owner_email: str | None,
    owner_name: str | None,
    manager_email: str | None,
    admins: Sequence[str],
) -> LeadAccess:
    """The access to a lead of this owner; an unowned lead is the admins' alone (no owner,
    so no team and no manager of it)."""
    if owner_email is None:
        return LeadAccess(None, None, None, tuple(admins))
    return LeadAccess(owner_email, owner_name, manager_email, tuple(admins))
