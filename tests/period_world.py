"""The March 2026 sales world of the period report and dashboard tests: Berlin hours Mon–Fri
9–17, a 4-business-hour first touch, two reps, six leads around the week of 23–30 March (the
clocks go forward on the 29th), marketing qualifying some of them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.world import World, cli_after_a_run

BERLIN = ZoneInfo("Europe/Berlin")

CONFIG = """
crm:
  provider: hubspot
  touch_types: [call, email, meeting]
  sync_overlap: 1m
calendars:
  berlin: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}
teams:
  emea: {calendar: berlin, manager: mike.manager@example.com}
policies:
  - name: inbound
    first_touch: 4h
    return_statuses: [UNQUALIFIED]
marketing:
  monthly_quota: 31
  qualified_stage: marketingqualifiedlead
  team_quotas: {emea: 62}
  source_quotas: {ORGANIC_SEARCH: 31}
escalation:
  - {after: 0m, notify: rep}
notifications:
  send_resolved: %(send_resolved)s
  group_wait: 0s
"""


def berlin(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def seed(world: World) -> dict[str, str]:
    """Two reps, six leads; a 4-business-hour first touch in Berlin, open Mon–Fri 9–17. The
    clocks go forward on Sunday 29 March (CET → CEST), inside the period 23–30 March."""
    world.add_rep("101", "Lena Fischer")
    world.add_rep("102", "Tom Berger")
    now = world.clock.now

    ids = {}

    def lead(name: str, owner: str, assigned: datetime, touched: datetime | None) -> None:
        lead_id = world.add_lead(owner_id=owner, assigned_ago=now - assigned, name=name)
        if touched is not None:
            world.add_call(lead_id, owner_id=owner, at=touched, minutes=5)
        ids[name.split()[0]] = lead_id

    # Fri 15:00 CET → deadline Mon 11:00 CEST; touched Mon 10:00: 2h + 1h = 3h, on time.
    lead("Anna Weekend", "101", berlin(27, 15), berlin(30, 10))
    # Mon 09:00 → touched 09:30: 30m, on time.
    lead("Ben Quick", "101", berlin(23, 9), berlin(23, 9, 30))
    # Tue 14:00 → deadline Wed 10:00; touched Wed 12:00: 3h + 3h = 6h, late.
    lead("Cora Late", "101", berlin(24, 14), berlin(25, 12))
    # Thu 09:00 → deadline Thu 13:00, never touched: breached.
    lead("Dan Never", "102", berlin(26, 9), None)
    # Mon 30 Mar 15:00 → deadline Tue 31 Mar 11:00, after the period: received, not judged.
    lead("Eva After", "102", berlin(30, 15), berlin(31, 10))
    # Fri 20 Mar 15:00 → deadline Mon 23 Mar 11:00, in the period; touched Mon 09:15: 2h15m.
    lead("Finn Before", "102", berlin(20, 15), berlin(23, 9, 15))
    return ids


def crm_edit(world: World, lead_id: str, at: datetime, **properties: str) -> None:
    """Edit a contact in the fake HubSpot as if at ``at`` (HubSpot dates the change)."""
    now = world.clock.now
    world.clock.now = at
    try:
        world.hubspot.upsert_contact(lead_id, **properties)
    finally:
        world.clock.now = now


def qualify(world: World, ids: dict[str, str]) -> None:
    """Marketing qualifies leads: three inside 23–30 March (one minutes before its end), one
    before and one after; Finn never. Anna is complete; Eva is returned as unqualified."""
    mql = "marketingqualifiedlead"
    crm_edit(world, ids["Anna"], berlin(27, 14), lifecyclestage=mql, phone="+49 30 1234")
    crm_edit(
        world, ids["Ben"], berlin(23, 8), lifecyclestage=mql, hs_analytics_source="ORGANIC_SEARCH"
    )
    crm_edit(world, ids["Cora"], berlin(20, 12), lifecyclestage=mql)
    crm_edit(world, ids["Dan"], berlin(31, 9), lifecyclestage=mql)
    crm_edit(world, ids["Eva"], berlin(30, 23, 30), lifecyclestage=mql)
    crm_edit(world, ids["Eva"], berlin(31, 12), hs_lead_status="UNQUALIFIED")


def report(world: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """``sla-worker report --period`` over the week of 23–30 March (after a run)."""
    return cli_after_a_run(
        world, monkeypatch, "report", "--period", "2026-03-23..2026-03-30", *args
    )
