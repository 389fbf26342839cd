"""End to end on Redis + PostgreSQL: N overdue leads from the fake HubSpot to Slack reminders.

For each worker process count in ``--workers`` it runs the whole thing once, on a database of
its own (created on the ``--database-url`` server, migrated, dropped at the end) and a flushed
``--broker-url`` Redis database: the fake HubSpot holds ``--leads`` contacts assigned over the
past 30 days to ``--reps`` owners, each rep a Slack user of the fake Slack, every lead past its
first-touch deadline (one policy, ``first_touch: 1h``, an always-open calendar, one escalation
level: the rep, ``group_wait: 0s``). One Celery worker is started as compose starts it, but with
``--concurrency <n>`` and every queue (``-Q sync,evaluate,deliver,housekeeping``) and no beat:
this script sends ``sync`` once, then ``evaluate`` and ``deliver`` every ``--tick`` seconds with
that expiry, as beat would, until every lead's reminder row is sent and nothing is left pending.

Figures per run: ``wall_s``, from the moment the sync task is sent to the time stamp (``ts``)
of the last message the fake Slack accepted; ``messages`` it accepted (a rep gets one list per
deliver pass that found news for them, so this depends on the timing, not only on the reps);
``worker_cpu_s``, user + system CPU of the worker's process tree (main process and pool, from
/proc) over the same span — PostgreSQL, Redis and the fakes (in this process, on the same
cores) are not in it, nor a pool process that ended meanwhile; ``<stage>_s``, the **wall** time
of that stage's runs summed over every process (the worker's
``sla_worker_stage_duration_seconds_sum`` on /metrics), not CPU: the stages share the
processes, and per-stage CPU cannot be told apart there; ``other_rows``, outbox rows that are
not a reminder (expected: 0); ``task_errors``, tasks the worker's log says raised. A sync that
raised is sent again at once and counted in ``sync_retries``; beat would send it at the next
``schedules.sync``.

Exactly once is checked against both ends: each lead must have exactly one first-touch
reminder row (level 0), sent, to its own rep; every message Slack accepted must be the one
recorded on its rows (a message sent twice leaves one that no row records) and every message a
row records must have reached that rep's DM. A duplicate or a loss, a run that does not finish
within ``--timeout`` or a worker that dies makes the script exit 1.

The fake HubSpot enforces HubSpot's Free/Starter limits in real time (5 searches/s, 100
requests per rolling 10 s) and the worker keeps to its configured budget (4 searches/s, the
default), 200 contacts a page: syncing 100,000 contacts takes at least 500 / 4 = 125 s per run,
whatever the process count. The fake Slack takes one message per second per conversation.

    .venv/bin/python benchmarks/e2e.py [--leads 100000] [--reps 40] [--workers 1,2,4]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--broker-url redis://127.0.0.1:6379/14] [--tick 2] [--timeout 3600]

The script flushes the ``--broker-url`` database before each run. One line per run, then a
machine-readable last line:
``leads=100000 reps=40 workers=1,2,4 wall_s=<a,b,c> leads_per_s=<a,b,c> messages=<a,b,c>
duplicates=0 lost=0 sync_retries=<n> task_errors=<n>`` (the last two summed over the runs).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, make_url, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from worker.celery_app import QUEUES, make_app
from worker.config import load_config
from worker.fakes.hubspot import FakeHubSpot, hs_datetime
from worker.fakes.slack import FakeSlack
from worker.notices import NoticeKind
from worker.settings import Settings
from worker.store.db import make_engine, make_sessionmaker, upgrade
from worker.store.models import OutboxRow
from worker.store.outbox import Status

BIN = Path(sys.executable).parent
HUBSPOT_TOKEN = "benchmark-hubspot-token"
SLACK_TOKEN = "xoxb-benchmark-token"
# HubSpot's Free/Starter limits, enforced by the fake as in benchmarks/sync.py.
SEARCH_PER_S = 5
BURST_PER_10S = 100
SLACK_PER_CHANNEL_PER_S = 1.0
STAGES = ("sync", "evaluate", "deliver")
#: The one outbox row each lead must have: its first-touch breach, level 0 (the rep).
REMINDER = ("first_touch", 0, NoticeKind.BREACH)
#: Deliver passes after the last reminder went out, to catch a message sent again late.
SETTLE_TICKS = 3
#: How often the store is asked whether everything was sent.
POLL_EVERY_S = 1.0
#: Celery's log line for a task that failed.
RAISED = re.compile(r"Task [\w.]+\[(?P<id>[^\]]+)\] raised")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
LIBC = ctypes.CDLL(None)  # loaded before any fork: nothing to load in the child

CONFIG = """
crm:
  provider: hubspot
  touch_types: [call, email, meeting]
  record_url: "https://app.hubspot.com/contacts/1/record/0-1/{id}"
schedules: {sync: 2m, evaluate: %(tick)ds, deliver: %(tick)ds}
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
teams:
  sales: {calendar: always}
policies:
  - name: default
    first_touch: 1h
escalation:
  - {after: 0m, notify: rep}
notifications:
  send_resolved: false
  group_wait: 0s
"""


@dataclass
class Seeded:
    """The fake HubSpot's leads: lead id → its rep's e-mail; rep e-mail → Slack user id."""

    hubspot: FakeHubSpot
    rep_of: dict[str, str]
    slack_user_of: dict[str, str]


@dataclass
class RunFigures:
    workers: int
    wall_s: float = 0.0
    messages: int = 0
    duplicates: int = 0
    lost: int = 0
    other_rows: int = 0
    sync_retries: int = 0
    task_errors: int = 0
    worker_cpu_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)
    finished: bool = False

    def leads_per_s(self, leads: int) -> int:
        return int(leads / self.wall_s) if self.wall_s else 0

    def line(self, leads: int) -> str:
        stages = " ".join(f"{name}_s={self.stage_s.get(name, 0.0):.1f}" for name in STAGES)
        return (
            f"workers={self.workers} wall_s={self.wall_s:.1f} "
            f"leads_per_s={self.leads_per_s(leads)} messages={self.messages} "
            f"duplicates={self.duplicates} lost={self.lost} other_rows={self.other_rows} "
            f"sync_retries={self.sync_retries} task_errors={self.task_errors} "
            f"worker_cpu_s={self.worker_cpu_s:.1f} {stages}"
        )


def seed_hubspot(leads: int, reps: int) -> Seeded:
    hubspot = FakeHubSpot(
        HUBSPOT_TOKEN, search_rate_per_s=SEARCH_PER_S, burst_per_10s=BURST_PER_10S
    )
    now = datetime.now(UTC)
    emails = [f"rep{r}@example.com" for r in range(reps)]
    for r, email in enumerate(emails):
        hubspot.add_owner(str(101 + r), email, "Rep", str(r))
    rep_of = {}
    for i in range(leads):
        assigned = now - timedelta(days=i % 30, hours=2)
        lead_id = hubspot.upsert_contact(
            firstname=f"Lead{i}",
            lastname="Example",
            company=f"Company {i % 97}",
            email=f"lead{i}@lead.example",
            hs_lead_status="OPEN",
            hubspot_owner_id=str(101 + i % reps),
            hubspot_owner_assigneddate=hs_datetime(assigned),
            createdate=hs_datetime(assigned - timedelta(minutes=1)),
        )
        rep_of[lead_id] = emails[i % reps]
    return Seeded(hubspot, rep_of, {email: f"U{r:05d}" for r, email in enumerate(emails)})


def new_slack(seeded: Seeded) -> FakeSlack:
    slack = FakeSlack(SLACK_TOKEN, channel_rate_per_s=SLACK_PER_CHANNEL_PER_S)
    for r, (email, user_id) in enumerate(seeded.slack_user_of.items()):
        slack.add_user(user_id, email, f"Rep {r}", tz="UTC")
    return slack


@contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """A new, migrated database ``name`` on the server, dropped afterwards."""
    admin = make_url(server_url).set(drivername="postgresql")
    admin_dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and its living descendants."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    tree = {root}
    grew = True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def _end_with_parent() -> None:
    """In the worker's main process before it runs: a warm shutdown when this script dies
    (killed by a test's timeout, say), rather than a worker left consuming the broker."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Worker:
    """One Celery worker process tree consuming every queue, logging to a file."""

    def __init__(self, concurrency: int, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._read_to = 0
        self._raised: set[str] = set()
        # docker-compose.yml's worker command, with this run's concurrency and every queue.
        argv = [
            str(BIN / "celery"),
            "-A",
            "worker.celery_app",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "-Q",
            ",".join(QUEUES),
            "-n",
            f"bench{concurrency}@%h",
        ]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_end_with_parent,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_s(self) -> float:
        return tree_cpu_s(self.process.pid)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def raised(self) -> set[str]:
        """Ids of the tasks that raised so far, as Celery logs them. (A stage that fails while
        taking the config is not recorded in the store: the log is the one place that says.)"""
        with self.log.open("rb") as log:
            log.seek(self._read_to)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1
        self._read_to += complete
        for line in chunk[:complete].decode(errors="replace").splitlines():
            match = RAISED.search(line)
            if match:
                self._raised.add(match["id"])
        return self._raised

    def errors(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        worth = [line for line in text if "ERROR" in line]
        return "\n".join(worth[-lines:])


def stage_seconds(metrics_url: str) -> dict[str, float]:
    """The wall time of each stage's runs, summed over the worker's processes (/metrics)."""
    text = requests.get(metrics_url, timeout=30).text
    return {
        sample.labels["stage"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "sla_worker_stage_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_sum")
    }


def all_sent(sessions: sessionmaker[Session], leads: int) -> bool:
    """Every lead's reminder is sent and nothing is pending or being sent. The unsent rows are
    counted first: their partial index makes that cheap while the run is busy."""
    with sessions() as session:
        unsent = session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.status.in_([Status.PENDING, Status.SENDING]))
        )
        if unsent:
            return False
        sent = session.scalar(
            select(func.count(func.distinct(OutboxRow.lead_id))).where(
                tuple_(OutboxRow.rule, OutboxRow.level, OutboxRow.kind) == REMINDER,
                OutboxRow.status == Status.SENT,
            )
        )
    return (sent or 0) >= leads


def check_exactly_once(
    sessions: sessionmaker[Session], slack: FakeSlack, seeded: Seeded, figures: RunFigures
) -> None:
    """Count duplicates and losses, comparing the outbox with what Slack received."""
    with sessions() as session:
        rows = session.execute(
            select(
                OutboxRow.lead_id,
                OutboxRow.rule,
                OutboxRow.level,
                OutboxRow.kind,
                OutboxRow.recipient,
                OutboxRow.status,
                OutboxRow.slack_channel,
                OutboxRow.slack_ts,
            )
        ).all()
    with slack.lock:
        posted = {(m.channel, m.ts): m.user_id for m in slack.messages}
    figures.messages = len(posted)
    reminders: Counter[str] = Counter()
    delivered: set[str] = set()
    recorded: set[tuple[str, str]] = set()
    for row in rows:
        where = (row.slack_channel or "", row.slack_ts or "")
        if row.status == Status.SENT:
            recorded.add(where)
        if (row.rule, row.level, row.kind) != REMINDER:
            figures.other_rows += 1
            continue
        reminders[row.lead_id] += 1
        rep = seeded.rep_of.get(row.lead_id)
        if (
            rep is not None
            and row.status == Status.SENT
            and row.recipient == f"email:{rep}"
            and posted.get(where) == seeded.slack_user_of[rep]
        ):
            delivered.add(row.lead_id)
    # A second reminder row for a lead, or a message that no row records: its rows were
    # recorded with another message, so they were sent twice.
    figures.duplicates = sum(n - 1 for n in reminders.values()) + len(posted.keys() - recorded)
    # A lead without its reminder sent to its own rep's DM, as recorded and as received.
    figures.lost = len(seeded.rep_of.keys() - delivered)


def run(workers: int, args: argparse.Namespace, seeded: Seeded, tmp: Path) -> RunFigures:
    """One run in the empty directory ``tmp``: a flushed broker, a fresh database and Slack,
    one worker tree of ``workers`` processes."""
    figures = RunFigures(workers)
    broker = redis.Redis.from_url(args.broker_url)
    broker.flushdb()
    broker.close()
    config = tmp / "sla.yaml"
    config.write_text(CONFIG % {"tick": args.tick})
    load_config(config)  # a mistake here is the benchmark's: stop before starting anything
    metrics_dir = tmp / "metrics"
    metrics_dir.mkdir()
    metrics_port = free_port()
    slack = new_slack(seeded)
    slack.start()
    try:
        with fresh_database(args.database_url, f"sla_e2e_{tmp.name}_{os.getpid()}") as url:
            env = {
                **os.environ,
                "SLA_CONFIG": str(config),
                "DATABASE_URL": url,
                "BROKER_URL": args.broker_url,
                "HUBSPOT_BASE_URL": seeded.hubspot.base_url,
                "HUBSPOT_TOKEN": HUBSPOT_TOKEN,
                "SLACK_API_URL": slack.api_url,
                "SLACK_BOT_TOKEN": SLACK_TOKEN,
                "METRICS_PORT": str(metrics_port),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                "LOG_FORMAT": "text",
            }
            env.pop("DATABASE_PASSWORD", None)  # the URL is complete
            app = make_app(Settings.from_env(env))
            engine = make_engine(url)
            sessions = make_sessionmaker(engine)
            worker = Worker(workers, env, tmp / "worker.log")
            try:
                metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
                figures.finished = drive(app, worker, sessions, slack, metrics_url, args, figures)
                if figures.finished:
                    check_exactly_once(sessions, slack, seeded, figures)
                else:
                    print(f"workers={workers}: not finished within {args.timeout} s")
            finally:
                worker.stop()
                figures.task_errors = len(worker.raised())
                if (
                    figures.task_errors
                    or figures.duplicates
                    or figures.lost
                    or not figures.finished
                ):
                    print(f"workers={workers}: errors in the worker's log:\n{worker.errors()}")
                app.close()
                engine.dispose()
    finally:
        slack.stop()
    return figures


def drive(
    app: Celery,
    worker: Worker,
    sessions: sessionmaker[Session],
    slack: FakeSlack,
    metrics_url: str,
    args: argparse.Namespace,
    figures: RunFigures,
) -> bool:
    """Sync once, then evaluate and deliver every tick, as beat would, until every reminder
    is sent and a few more ticks have gone by; False when time ran out or the worker died.
    The figures are taken at the moment everything was sent."""
    ready_by = time.monotonic() + 120
    while not app.control.ping(timeout=1.0):
        if not worker.alive() or time.monotonic() > ready_by:
            return False
    cpu_before = worker.cpu_s()
    started = time.time()
    sync = app.send_task("worker.tasks.sync", expires=args.timeout)
    give_up = time.monotonic() + args.timeout
    next_tick = next_poll = time.monotonic()
    ticks_after: int | None = None  # ticks sent since everything was sent
    while time.monotonic() < give_up and worker.alive():
        if time.monotonic() >= next_tick:
            if ticks_after == SETTLE_TICKS:
                return True
            for stage in ("evaluate", "deliver"):
                app.send_task(f"worker.tasks.{stage}", expires=args.tick)
            next_tick += args.tick
            ticks_after = None if ticks_after is None else ticks_after + 1
        if ticks_after is None and time.monotonic() >= next_poll:
            next_poll += POLL_EVERY_S
            if sync.id in worker.raised():
                # Beat would send it again at the next schedules.sync; at once here, counted.
                sync = app.send_task("worker.tasks.sync", expires=args.timeout)
                figures.sync_retries += 1
            if all_sent(sessions, args.leads):
                figures.worker_cpu_s = worker.cpu_s() - cpu_before
                with slack.lock:
                    last = max((float(m.ts) for m in slack.messages), default=started)
                figures.wall_s = last - started
                figures.stage_s = stage_seconds(metrics_url)
                ticks_after = 0
        time.sleep(0.1)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=40, help="CRM owners, each a Slack user")
    parser.add_argument(
        "--workers", default="1,2,4", help="worker process counts, one run each (1,2,4)"
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server on which the script may create and drop sla_e2e_* databases",
    )
    parser.add_argument(
        "--broker-url", default="redis://127.0.0.1:6379/14", help="flushed before each run"
    )
    parser.add_argument("--tick", type=int, default=2, help="seconds between evaluate/deliver")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds a run may take")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    started = time.perf_counter()
    seeded = seed_hubspot(args.leads, args.reps)
    seeded.hubspot.start()
    print(
        f"seeded {args.leads} leads for {args.reps} reps in "
        f"{time.perf_counter() - started:.0f} s; PostgreSQL, Redis {args.broker_url}"
    )
    runs: list[RunFigures] = []
    try:
        with tempfile.TemporaryDirectory(prefix="sla-e2e-") as tmp:
            for index, workers in enumerate(counts, start=1):
                directory = Path(tmp) / f"run{index}"
                directory.mkdir()
                figures = run(workers, args, seeded, directory)
                runs.append(figures)
                print(figures.line(args.leads), flush=True)
    finally:
        seeded.hubspot.stop()

    def each(values: list[str]) -> str:
        return ",".join(values)

    duplicates = sum(r.duplicates for r in runs)
    lost = sum(r.lost if r.finished else args.leads for r in runs)
    print(
        f"leads={args.leads} reps={args.reps} workers={each([str(n) for n in counts])} "
        f"wall_s={each([f'{r.wall_s:.1f}' for r in runs])} "
        f"leads_per_s={each([str(r.leads_per_s(args.leads)) for r in runs])} "
        f"messages={each([str(r.messages) for r in runs])} "
        f"duplicates={duplicates} lost={lost} "
        f"sync_retries={sum(r.sync_retries for r in runs)} "
        f"task_errors={sum(r.task_errors for r in runs)}"
    )
    # A throughput over runs that lost or doubled reminders would be meaningless.
    return 0 if all(r.finished for r in runs) and not duplicates and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
