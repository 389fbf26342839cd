"""Whom a lead may be reassigned to from Slack: the other active CRM owners of its team.

A team's members are the stored owners (``owners``, from the CRM) whom the agreement puts in
that team, as it places an owner everywhere (``Agreement.team_for``: the first team whose
``owners`` match their e-mail or CRM team); archived owners and owners without an e-mail (who
could not be told) are left out. Names are the stored owners' display names. Reads the store;
writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.config import Agreement
from worker.slack.messages import MAX_SELECT_OPTIONS
from worker.store.db import chunks
from worker.store.models import Lead, Owner

log = logging.getLogger(__name__)

#: Team name → its active owners as (display name, CRM owner id), sorted by name.
Rosters = dict[str, list[tuple[str, str]]]


def team_rosters(session: Session, agreement: Agreement) -> Rosters:
    """Every team's active owners with an e-mail, by name."""
    rosters: Rosters = {name: [] for name in agreement.teams}
    owners = session.scalars(
        select(Owner).where(Owner.archived.is_(False), Owner.email.is_not(None))
    ).all()
    for owner in owners:
        team = agreement.team_for(owner.email, owner.teams)
        rosters[team.name].append((owner.display_name, owner.id))
    for name, members in rosters.items():
        members.sort(key=lambda m: (m[0].casefold(), m[1]))
        if len(members) > MAX_SELECT_OPTIONS + 1:  # the lead's owner is not offered
            log.warning(
                "team %s has %d active owners: a Reassign menu lists the first %d by name "
                "(Slack's limit)",
                name,
                len(members),
                MAX_SELECT_OPTIONS,
            )
    return rosters


def teammates_of_leads(
    session: Session, agreement: Agreement, lead_ids: Iterable[str], rosters: Rosters
) -> dict[str, list[tuple[str, str]]]:
    """Lead id → the other active owners of its owner's team (leads without an owner, or
    whose owner has no teammate, are left out)."""
    ids = sorted(set(lead_ids))
    if not ids:
        return {}
    rows = [
        row
        for chunk in chunks(ids)
        for row in session.execute(
            select(Lead.id, Owner.id, Owner.email, Owner.teams)
            .join(Owner, Owner.id == Lead.owner_id)
            .where(Lead.id.in_(chunk))
        ).all()
    ]
    found: dict[str, list[tuple[str, str]]] = {}
    for lead_id, owner_id, email, crm_teams in rows:
        team = agreement.team_for(email, crm_teams or [])
        others = [m for m in rosters.get(team.name, []) if m[1] != owner_id]
        if others:
            found[lead_id] = others
    return found


def teammates_of(
    session: Session, agreement: Agreement, owner_id: str
) -> tuple[str, list[tuple[str, str]]]:
    """The team of the owner ``owner_id`` (a stored owner) and its other active owners."""
    owner = session.get(Owner, owner_id)
    team = agreement.team_for(owner.email if owner else None, owner.teams if owner else [])
    members = team_rosters(session, agreement)[team.name]
    return team.name, [m for m in members if m[1] != owner_id]
