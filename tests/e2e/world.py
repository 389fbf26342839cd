"""A small sales world for end-to-end tests: fake HubSpot + fake Slack on loopback, a config
file, a settable clock, and a worker context pointed at them through the real settings."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from worker.fakes.hubspot import FakeHubSpot
from worker.fakes.slack import FakeSlack
from worker.pipeline.context import Context, open_context
from worker.settings import Settings
from worker.slack.pacing import ChannelPacer
from worker.store.db import upgrade
from worker.store.models import OutboxRow

HUBSPOT_TOKEN = "test-hubspot-token"
SLACK_TOKEN = "xoxb-test-token"
SLACK_SIGNING_SECRET = "test-signing-secret"

#: Always open, so deadlines are plain arithmetic; business hours have their own tests.
CONFIG = """
crm:
  provider: hubspot
  touch_types: [call, email, meeting]
  record_url: "https://app.hubspot.com/contacts/1/record/0-1/{id}"
  sync_overlap: 1m
schedules: {sync: 1s, evaluate: 1s, deliver: 1s}
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
teams:
  sales:
    calendar: always
    manager: mike.manager@example.com
    channel: "#sales-escalations"
policies:
  - name: default
    first_touch: 1h
    warn_before: 15m
escalation:
  - {after: 0m, notify: rep}
  - {after: 2h, notify: manager}
notifications:
  send_resolved: %(send_resolved)s
  group_wait: 0s
"""


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 10, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class RealClock(Clock):
    """The wall clock, for tests whose worker runs in another process."""

    @property  # type: ignore[override]
    def now(self) -> datetime:
        return datetime.now(UTC)

    @now.setter
    def now(self, value: datetime) -> None:
        pass


@dataclass
class World:
    clock: Clock
    hubspot: FakeHubSpot
    slack: FakeSlack
    config_path: Path
    database_url: str

    def env(self) -> dict[str, str]:
        return {
            "SLA_CONFIG": str(self.config_path),
            "DATABASE_URL": self.database_url,
            "HUBSPOT_BASE_URL": self.hubspot.base_url,
            "HUBSPOT_TOKEN": HUBSPOT_TOKEN,
            "SLACK_API_URL": self.slack.api_url,
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        }

    @contextmanager
    def context(self) -> Iterator[Context]:
        """The worker's composition root pointed at this world, on its clock."""
        upgrade(self.database_url)
        pacer = ChannelPacer(clock=self.pace_clock, sleep=self.pace_sleep)
        with open_context(Settings.from_env(self.env()), clock=self.clock, pacer=pacer) as ctx:
            yield ctx

    #: Seconds the pacer waited (virtually): tests never sleep for real.
    paced_for: float = 0.0

    def pace_clock(self) -> float:
        return self.paced_for

    def pace_sleep(self, seconds: float) -> None:
        self.paced_for += seconds

    def add_rep(
        self, owner_id: str = "101", name: str = "Lena Fischer", slack_id: str | None = "U0LENA"
    ) -> str:
        first, last = name.split()
        email = f"{first.lower()}@example.com"
        self.hubspot.add_owner(owner_id, email, first, last, teams=["EMEA"])
        if slack_id:
            self.slack.add_user(slack_id, email, name, tz="Europe/Berlin")
        return email

    def add_lead(
        self,
        *,
        owner_id: str | None = "101",
        assigned_ago: timedelta,
        name: str = "Maria Lopez",
        company: str = "Nordwind GmbH",
    ) -> str:
        first, last = name.split(maxsplit=1)
        assigned = self.clock.now - assigned_ago
        return self.hubspot.upsert_contact(
            firstname=first,
            lastname=last,
            company=company,
            email=f"{first.lower()}@lead.example",
            hs_lead_status="OPEN",
            hubspot_owner_id=owner_id,
            hubspot_owner_assigneddate=iso(assigned) if owner_id else None,
            createdate=iso(assigned - timedelta(minutes=1)),
        )

    def add_call(
        self, lead_id: str, *, owner_id: str = "101", at: datetime | None = None, minutes: int = 5
    ) -> str:
        return self.hubspot.add_engagement(
            "calls",
            {
                "hs_timestamp": iso(at or self.clock.now),
                "hubspot_owner_id": owner_id,
                "hs_call_direction": "OUTBOUND",
                "hs_call_status": "COMPLETED",
                "hs_call_duration": str(minutes * 60_000),
            },
            [lead_id],
        )


def make_world(
    tmp_path: Path,
    database_url: str,
    *,
    send_resolved: bool = True,
    clock: Clock | None = None,
    config: str = CONFIG,
) -> Iterator[World]:
    clock = clock or Clock()
    config_path = tmp_path / "sla.yaml"
    config_path.write_text(config % {"send_resolved": str(send_resolved).lower()})
    hubspot = FakeHubSpot(HUBSPOT_TOKEN, clock=clock)
    slack = FakeSlack(SLACK_TOKEN, signing_secret=SLACK_SIGNING_SECRET)
    slack.add_user("U0MIKE", "mike.manager@example.com", "Mike Manager", tz="America/New_York")
    slack.add_channel("C0ESC", "sales-escalations")
    hubspot.start()
    slack.start()
    try:
        yield World(clock, hubspot, slack, config_path, database_url)
    finally:
        hubspot.stop()
        slack.stop()


def outbox_rows(ctx: Context) -> list[OutboxRow]:
    """Every outbox row, oldest first."""
    with ctx.sessions() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all())


def cli_after_a_run(world: World, monkeypatch: Any, *argv: str) -> str:
    """Sync, evaluate and deliver once on the world's clock, then run ``sla-worker *argv`` as
    a user types it against the same store and fakes; what it printed (it must exit 0)."""
    from worker.cli import main
    from worker.pipeline.stages import run_once

    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    with world.context() as ctx:
        run_once(ctx)
    output = io.StringIO()
    monkeypatch.setattr("sys.stdout", output)
    assert main(list(argv)) == 0
    return output.getvalue()
