"""``sla-worker health``: whether enforcement is working, each part with the reason when not.

What it looks at: the store (reachable, migrated — never created by looking), the config file
(valid, or since when invalid), the CRM and Slack (their tokens asked live; the stages' last
experience otherwise), each periodic stage's last success against its schedule (a hung or
failing worker shows here), and the outbox (notices that failed in the last day, notices
waiting long past their time). A beat has its own check: it keeps writing its schedule state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from worker.config import SchedulesConfig, SlaConfig, load_config
from worker.errors import ConfigError, SlaWorkerError
from worker.settings import Settings
from worker.store import outbox
from worker.store.db import make_engine, make_sessionmaker, session_scope
from worker.store.models import OutboxRow, StageRun
from worker.store.outbox import Status

#: The periodic stages whose last success must be recent.
PERIODIC = ("sync", "evaluate", "deliver")
#: A stage is late when it has not succeeded for this many of its intervals (and 10 minutes).
LATE_AFTER_RUNS = 5
MIN_LATE = timedelta(minutes=10)
#: Notices that failed within this window turn health red.
FAILED_WITHIN = timedelta(days=1)
#: A pending notice this long past its due time is stuck (deliver runs every few seconds).
STUCK_AFTER = timedelta(minutes=15)
#: Beat writes its schedule state at least every 3 minutes while it ticks (celery's default).
BEAT_STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Check:
    component: str
    ok: bool
    detail: str = ""
    since: datetime | None = None

    def line(self) -> str:
        state = "ok" if self.ok else "invalid" if self.component == "config" else "FAILING"
        since = f" since {self.since:%Y-%m-%d %H:%M} UTC" if self.since else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.component}: {state}{since}{detail}"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        return data


def check_all(settings: Settings, now: datetime, *, live: bool = True) -> list[Check]:
    """Every check, in a stable order; ``live`` also asks the CRM and Slack."""
    config, config_error = _config(settings)
    # "crm"/"slack": what the stages last experienced; "crm (live)"/"slack (live)": asked now.
    checks = list(_store_checks(settings, config, config_error, now))
    if live:
        checks += _live_checks(settings, config)
    return checks


def beat_check(now: datetime) -> Check:
    """Whether a beat writes its schedule state (``SLA_BEAT_SCHEDULE``) as it ticks."""
    from worker.celery_app import beat_schedule_filename

    filename = Path(beat_schedule_filename())
    files = [p for p in filename.parent.glob(filename.name + "*") if p.is_file()]
    if not files:
        return Check("beat", False, f"no schedule state at {filename}: is beat running?")
    newest = max(datetime.fromtimestamp(p.stat().st_mtime, now.tzinfo) for p in files)
    if now - newest > BEAT_STALE_AFTER:
        return Check("beat", False, f"schedule state not written since {newest:%H:%M} UTC")
    return Check("beat", True, f"schedule state written at {newest:%H:%M:%S} UTC")


# -- the parts -----------------------------------------------------------------------------------


def _config(settings: Settings) -> tuple[SlaConfig | None, str | None]:
    try:
        return load_config(settings.config_path), None
    except ConfigError as e:
        return None, str(e)


def _store_checks(
    settings: Settings, config: SlaConfig | None, config_error: str | None, now: datetime
) -> Iterator[Check]:
    def config_check(since: datetime | None = None) -> Check:
        if config_error is None:
            return Check("config", True)
        return Check(
            "config", False, f"{config_error} (the workers run the last good config)", since
        )

    problem = _missing_store(settings)
    if problem is not None:
        yield Check("database", False, problem)
        if config_error is not None:
            yield config_check()
        return
    engine = make_engine(settings.database_url)  # one engine for the probe and the reads
    try:
        problem = _unreadable_store(engine)
        if problem is not None:
            yield Check("database", False, problem)
            if config_error is not None:
                yield config_check()
            return
        with session_scope(make_sessionmaker(engine)) as session:
            stored = {c.component: c for c in outbox.health(session)}
            runs = outbox.stage_runs(session)
            counts = outbox.counts_by_status(session)
            failed = session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.status == Status.FAILED, OutboxRow.due_at >= now - FAILED_WITHIN)
            )
            stuck = session.execute(
                select(func.count(), func.min(OutboxRow.due_at)).where(
                    OutboxRow.status == Status.PENDING, OutboxRow.due_at < now - STUCK_AFTER
                )
            ).one()
    except (OperationalError, InterfaceError):
        raise  # the database did not answer: the CLI says so in one line, exit 3
    except SQLAlchemyError as e:
        yield Check("database", False, f"cannot read the store ({type(e).__name__})")
        return
    finally:
        engine.dispose()
    yield Check("database", True)
    row = stored.get("config")
    yield config_check(row.updated_at if row is not None and not row.ok else now)
    for name in ("crm", "crm quota", "slack"):
        if name in stored:
            check = stored[name]
            yield Check(name, check.ok, check.detail, check.updated_at)
    schedules = config.schedules if config is not None else SchedulesConfig()
    for name in PERIODIC:
        yield _stage_check(name, runs.get(name), getattr(schedules, name), now)
    yield _outbox_check(counts, int(failed or 0), int(stuck[0] or 0), stuck[1])


def _missing_store(settings: Settings) -> str | None:
    """A SQLite store that does not exist (looking must not create it)."""
    url = make_url(settings.database_url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database not in ("", ":memory:"):  # noqa: SIM102
        if not Path(database).exists():
            return (
                f"no store at {database} (set DATABASE_URL, or create it with "
                "`sla-worker db upgrade`)"
            )
    return None


def _unreadable_store(engine: Engine) -> str | None:
    """Why the store cannot be read as it is, without changing anything."""
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
    except (OperationalError, InterfaceError):
        raise
    except SQLAlchemyError as e:
        return f"cannot be read ({type(e).__name__}; see `sla-worker --verbose health`)"
    if "stage_runs" not in tables:
        return "not migrated to this version: run `sla-worker db upgrade`"
    return None


def _stage_check(name: str, run: StageRun | None, every: timedelta, now: datetime) -> Check:
    late_after = max(MIN_LATE, every * LATE_AFTER_RUNS)
    component = f"stage {name}"
    last_ok = run.last_ok_at if run is not None else None
    error = run.last_error if run is not None else ""
    if last_ok is None:
        detail = "has not succeeded yet" + (f"; last error: {error}" if error else "")
        return Check(component, False, detail)
    if now - last_ok > late_after:
        detail = f"last succeeded {_ago(now - last_ok)} ago (runs every {_ago(every)})"
        if error:
            detail += f"; last error: {error}"
        return Check(component, False, detail, last_ok)
    return Check(component, True, f"last succeeded {_ago(now - last_ok)} ago", last_ok)


def _outbox_check(counts: dict[str, int], failed: int, stuck: int, oldest: object) -> Check:
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "empty"
    problems = []
    if failed:
        problems.append(f"{failed} notices failed in the last day (nobody could take them)")
    if stuck:
        problems.append(f"{stuck} notices waiting past their time since {oldest:%Y-%m-%d %H:%M}")
    return Check("outbox", not problems, "; ".join([*problems, summary]))


def _live_checks(settings: Settings, config: SlaConfig | None) -> Iterator[Check]:
    from worker.config import Agreement
    from worker.pipeline.context import make_crm_client, make_slack_client

    def crm() -> None:
        if config is not None:  # else: said under config
            make_crm_client(settings, Agreement(config), max_retries=0).check_auth()

    def slack() -> None:
        make_slack_client(settings).check_auth()

    for name, ask in (("crm", crm), ("slack", slack)):
        try:
            ask()
        except SlaWorkerError as e:
            yield Check(f"{name} (live)", False, str(e))
        except Exception as e:  # the network: one line, never a traceback
            yield Check(f"{name} (live)", False, f"cannot reach it ({type(e).__name__})")
        else:
            yield Check(f"{name} (live)", True, "the token is accepted")


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
