"""``sla-worker demo``: the whole pipeline once, on embedded defaults, against local fakes.

It starts a fake HubSpot and a fake Slack on 127.0.0.1, seeds a small sales team with leads
(some on time, some overdue), points the real worker at them through the same settings
production reads from the environment, runs sync → evaluate → deliver as Celery tasks
in-process on a throw-away SQLite database, and prints each Slack message as its recipient
would read it.
It never talks to anything but loopback.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from worker import tasks
from worker.celery_app import configure
from worker.config import Agreement, load_config
from worker.fakes.hubspot import FakeHubSpot
from worker.fakes.slack import FakeSlack
from worker.pipeline.context import open_context
from worker.settings import Settings
from worker.slack.messages import SlackMessage, as_plain_text
from worker.store.db import upgrade

DEMO_CONFIG = Path(__file__).parent / "demo_config.yaml"
HUBSPOT_TOKEN = "demo-hubspot-token"
SLACK_TOKEN = "xoxb-demo-token"


@dataclass(frozen=True)
class Person:
    owner_id: str
    slack_id: str
    first: str
    last: str
    team: str  # HubSpot team name
    tz: str

    @property
    def email(self) -> str:
        return f"{self.first.lower()}.{self.last.lower()}@example.com"


REPS = (
    Person("101", "U0LENA", "Lena", "Fischer", "EMEA", "Europe/Berlin"),
    Person("102", "U0JONAS", "Jonas", "Weber", "EMEA", "Europe/Berlin"),
    Person("201", "U0SAM", "Sam", "Carter", "Americas", "America/New_York"),
    Person("202", "U0PRIYA", "Priya", "Patel", "Americas", "America/New_York"),
)
MANAGERS = (
    Person("100", "U0ANNA", "Anna", "Schmidt", "EMEA", "Europe/Berlin"),
    Person("200", "U0MIKE", "Mike", "Jordan", "Americas", "America/New_York"),
)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def seeded_slack() -> FakeSlack:
    slack = FakeSlack(SLACK_TOKEN)
    for person in REPS + MANAGERS:
        slack.add_user(person.slack_id, person.email, f"{person.first} {person.last}", tz=person.tz)
    slack.add_channel("C0EMEAESC", "sales-emea-escalations")
    slack.add_channel("C0USESC", "sales-us-escalations")
    return slack


LENA, JONAS, SAM, PRIYA = REPS


@dataclass(frozen=True)
class DemoLead:
    """One seeded lead: its owner, how long ago (in open hours on its team's calendar) it was
    assigned, and the one activity it has so far, if any."""

    first: str
    last: str
    company: str
    owner: Person | None
    calendar: str
    assigned_ago: timedelta
    priority: str
    score: int
    #: (engagement type, open hours ago, its HubSpot properties besides time and owner).
    activity: tuple[str, timedelta, dict[str, str]] | None = None


DEMO_LEADS = (
    # Hot lead, no touch for 3½ open hours: breach for Lena (1h), escalated to her manager
    # (2h after the breach).
    DemoLead(
        "Maria", "Lopez", "Nordwind Logistik GmbH", LENA, "emea", timedelta(hours=3.5), "HIGH", 92
    ),
    # Hot lead called 20 minutes after assignment: on time, nobody is bothered.
    DemoLead(
        "Tobias",
        "Klein",
        "Spree Analytics",
        LENA,
        "emea",
        timedelta(hours=3),
        "HIGH",
        85,
        activity=(
            "calls",
            timedelta(hours=2, minutes=40),
            {
                "hs_call_direction": "OUTBOUND",
                "hs_call_status": "COMPLETED",
                "hs_call_duration": str(6 * 60 * 1000),
            },
        ),
    ),
    # Warm lead, 3h40m of its 4h gone: a warning for Jonas. The company name tries to ping
    # the whole channel; it arrives as harmless text.
    DemoLead(
        "Eva",
        "Braun",
        "<!channel> Braun & Söhne",
        JONAS,
        "emea",
        timedelta(hours=3, minutes=40),
        "MEDIUM",
        60,
    ),
    # Default policy (1 business day), only an inbound e-mail so far: overdue for Sam.
    DemoLead(
        "Chris",
        "Miller",
        "Hudson Outfitters",
        SAM,
        "americas",
        timedelta(hours=9),
        "LOW",
        30,
        activity=(
            "emails",
            timedelta(hours=4),
            {"hs_email_direction": "INCOMING_EMAIL", "hs_email_status": "SENT"},
        ),
    ),
    # Fresh lead for Priya: nothing due yet.
    DemoLead(
        "Dana", "White", "Liberty Dental", PRIYA, "americas", timedelta(minutes=30), "LOW", 40
    ),
    # Not assigned to anyone yet: nothing to judge.
    DemoLead("Noah", "Green", "Unrouted Inc", None, "americas", timedelta(hours=1), "LOW", 10),
)


def seeded_hubspot(now: datetime | None = None) -> FakeHubSpot:
    """The demo's portal: six reps' leads in two time zones, judged at ``now``."""
    now = now or datetime.now(UTC)
    agreement = Agreement(load_config(DEMO_CONFIG))
    hubspot = FakeHubSpot(HUBSPOT_TOKEN)
    for person in REPS + MANAGERS:
        hubspot.add_owner(
            person.owner_id, person.email, person.first, person.last, teams=[person.team]
        )
    for seed in DEMO_LEADS:
        calendar = agreement.calendars[seed.calendar]
        lead_id = _add_lead(hubspot, seed, calendar.subtract(now, seed.assigned_ago))
        if seed.activity is not None and seed.owner is not None:
            kind, ago, properties = seed.activity
            at = calendar.subtract(now, ago)
            owner = seed.owner.owner_id
            extra = {"hs_timestamp": _iso(at), "hubspot_owner_id": owner}
            hubspot.add_engagement(kind, {**extra, **properties}, [lead_id])
    return hubspot


def _add_lead(hubspot: FakeHubSpot, seed: DemoLead, assigned: datetime) -> str:
    owner = seed.owner
    return hubspot.upsert_contact(
        firstname=seed.first,
        lastname=seed.last,
        company=seed.company,
        email=f"{seed.first.lower()}@{seed.company.split()[0].lower()}.example",
        phone="+49 30 1234567" if owner and owner.team == "EMEA" else "+1 212 555 0100",
        lifecyclestage="salesqualifiedlead",
        hs_lead_status="OPEN",
        hubspot_owner_id=owner.owner_id if owner else None,
        hubspot_owner_assigneddate=_iso(assigned) if owner else None,
        hs_lead_priority=seed.priority,
        hubspotscore=str(seed.score),
        createdate=_iso(assigned - timedelta(minutes=5)),
    )


def run_demo(*, keep: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sla-worker-demo-"))
    hubspot = seeded_hubspot()
    slack = seeded_slack()
    hubspot.start()
    slack.start()
    settings = Settings(
        config_path=DEMO_CONFIG,
        database_url=f"sqlite:///{workdir / 'demo.sqlite'}",
        broker_url="memory://localhost/",
        hubspot_base_url=hubspot.base_url,
        hubspot_token=HUBSPOT_TOKEN,
        slack_api_url=slack.api_url,
        slack_bot_token=SLACK_TOKEN,
    )
    try:
        upgrade(settings.database_url)
        # The demo's "broker" is the process itself: tasks run inline, exactly as a worker
        # would run them, against the demo's own context.
        configure(
            settings,
            beat_schedule_filename=str(workdir / "celerybeat-schedule"),
            task_always_eager=True,
            task_eager_propagates=True,
        )
        with open_context(settings) as ctx, tasks.bound_to(ctx):
            synced = tasks.sync.delay().get()
            judged = tasks.evaluate.delay().get()
            delivered = tasks.deliver.delay().get()
        _print_messages(slack)
        print(_summary(synced, judged, delivered, slack))
    finally:
        hubspot.stop()
        slack.stop()
        if keep:
            print(f"demo database kept at {workdir / 'demo.sqlite'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _print_messages(slack: FakeSlack) -> None:
    names = {p.slack_id: f"{p.first} {p.last}" for p in REPS + MANAGERS}
    print()
    for posted in slack.messages:
        if posted.user_id:
            where = f"DM to {names.get(posted.user_id, posted.user_id)}"
        else:
            where = f"#{posted.channel_name or posted.channel}"
        print(f"┌─ Slack · {where}")
        body = as_plain_text(SlackMessage(posted.text or "", list(posted.blocks or [])))
        for line in body.splitlines():
            print(f"│ {line}")
        print("└─")
        print()


def _summary(
    synced: dict[str, object],
    judged: dict[str, object],
    delivered: dict[str, object],
    slack: FakeSlack,
) -> str:
    dms = sum(1 for m in slack.messages if m.user_id)
    kinds = Counter("DM" if m.user_id else "channel" for m in slack.messages)
    return (
        f"Demo summary: synced {synced['leads']} leads and {synced['touches']} touches from "
        f"the fake HubSpot; judged {judged['leads']} leads ({judged['skipped']} without owner "
        f"skipped), {judged['breached']} rules breached; sent {delivered['messages']} Slack "
        f"messages ({dms} DMs, {kinds['channel']} channel posts), "
        f"{delivered['rows_retrying']} waiting for retry, {delivered['rows_failed']} failed."
    )
