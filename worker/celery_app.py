"""The Celery app: broker from ``BROKER_URL``, beat schedule from the config's ``schedules``.

``celery -A worker.celery_app worker`` and ``celery -A worker.celery_app beat`` load this
module. Importing it has no side effects: the app reads the environment and the config when
Celery first needs its configuration (worker or beat start), through ``add_defaults``. Run
exactly one beat (docker-compose does). A bad config stops start-up with the key path in the
error rather than a beat that schedules nothing; a running beat follows later edits of the file
(``worker.beat``), refusing invalid ones.

The worker's observability is wired here through Celery's signals: its log handlers redact
secrets and write JSON lines with ``LOG_FORMAT=json`` (``worker.logs``), and its main process
serves ``/metrics`` on ``METRICS_PORT`` for itself and its pool's children
(``worker.exporter``, ``worker.metrics``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_after_setup,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from worker.config import SlaConfig, load_config
from worker.schedules import parse_schedule
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.exporter import Exporter

log = logging.getLogger(__name__)

TASKS = ("sync", "evaluate", "deliver")
PRUNE_EVERY = timedelta(hours=6)
REVIEW_LOOKS_EVERY = timedelta(minutes=15)

#: Each task on a queue of its own kind, so that a long sync (a first sync of a large portal
#: takes many minutes) never holds back delivery: compose runs sync on a worker of its own
#: (``-Q sync``) and the rest on another; a worker started without ``-Q`` consumes them all.
QUEUE_OF = {
    "sync": "sync",
    "evaluate": "evaluate",
    "deliver": "deliver",
    "prune": "housekeeping",
    "recycle": "housekeeping",
    "report": "housekeeping",
    "review": "housekeeping",
    # A /sla answer someone waits for: on deliver, the queue of short tasks that talk to Slack
    # now, not behind housekeeping's half-hour recycles and prunes.
    "slack_command": "deliver",
    "slack_action": "deliver",  # a button someone clicked: the same
}
QUEUES = ("sync", "evaluate", "deliver", "housekeeping")

#: (soft, hard) time limits per task: the soft one stops a stage at its next step (its lease
#: and claims keep what it committed), the hard one kills a process that hangs (a network
#: call without answer). A sync of a million contacts stays well within 45 minutes.
TIME_LIMITS = {
    "sync": (timedelta(minutes=45), timedelta(minutes=50)),
    "evaluate": (timedelta(minutes=25), timedelta(minutes=30)),
    "deliver": (timedelta(minutes=10), timedelta(minutes=12)),
    "prune": (timedelta(minutes=25), timedelta(minutes=30)),
    "recycle": (timedelta(minutes=25), timedelta(minutes=30)),
    "report": (timedelta(minutes=10), timedelta(minutes=12)),
    # Reads every stored lead once for eight periods, then one upload.
    "review": (timedelta(minutes=20), timedelta(minutes=25)),
    # One lead's timeline or one rep's list: seconds. Longer means something hangs, and the
    # person gave up long before.
    "slack_command": (timedelta(minutes=1), timedelta(minutes=2)),
    "slack_action": (timedelta(minutes=1), timedelta(minutes=2)),
}
#: Redis redelivers a task not acknowledged within this time (tasks are acknowledged when
#: they end): longer than the longest hard limit plus a queue wait, or a long sync would be
#: handed to a second worker while the first still runs it.
VISIBILITY_TIMEOUT = timedelta(hours=2)


def make_app(settings: Settings) -> Celery:
    """An app configured from ``settings`` now (tests, tools)."""
    app = Celery("sla_worker", include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    return app


def beat_schedule(config: SlaConfig) -> dict[str, dict[str, object]]:
    """Celery beat's schedule from the config's ``schedules`` (and recycle's, marketing's,
    the review's)."""
    schedule: dict[str, dict[str, object]] = {}
    for name in TASKS:
        every = getattr(config.schedules, name)
        schedule[name] = {
            "task": f"worker.tasks.{name}",
            "schedule": every.total_seconds(),
            # A run queued while no worker was up is stale by the next tick: drop it instead
            # of replaying a backlog of identical passes.
            "options": {"expires": every.total_seconds()},
        }
    # Housekeeping, not a user-facing schedule: the outbox forgets what it no longer needs.
    schedule["prune"] = {
        "task": "worker.tasks.prune",
        "schedule": PRUNE_EVERY.total_seconds(),
        "options": {"expires": PRUNE_EVERY.total_seconds()},
    }
    if config.recycle is not None:
        schedule["recycle"] = {
            "task": "worker.tasks.recycle",
            "schedule": parse_schedule(config.recycle.schedule),
        }
    if config.marketing is not None:
        schedule["report"] = {
            "task": "worker.tasks.report",
            "schedule": parse_schedule(config.marketing.schedule),
        }
    if config.review is not None:
        # The run itself knows whether a slot of the review's cadence has come (and posts a
        # period once): beat only has to look often enough for the slot's minute.
        schedule["review"] = {
            "task": "worker.tasks.review",
            "schedule": REVIEW_LOOKS_EVERY.total_seconds(),
            "options": {"expires": REVIEW_LOOKS_EVERY.total_seconds()},
        }
    return schedule


def transport_options(broker_url: str) -> dict[str, object]:
    """The visibility timeout for Redis, which redelivers what is not acknowledged in time;
    nothing for the embedded SQLAlchemy broker, whose transport hands its options to
    ``create_engine`` (kombu's ``sqlalchemy`` transport), which would refuse the key."""
    if broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
        return {"visibility_timeout": VISIBILITY_TIMEOUT.total_seconds()}
    return {}


def celery_config(settings: Settings) -> dict[str, object]:
    """Broker, beat schedule and delivery guarantees from the settings and the config."""
    return dict(
        broker_url=settings.broker_url,
        beat_schedule=beat_schedule(load_config(settings.config_path)),
        # Beat follows the config file while it runs (worker/beat.py).
        beat_scheduler="worker.beat:ReloadingScheduler",
        beat_schedule_filename=beat_schedule_filename(),
        task_queues={name: {"exchange": name, "routing_key": name} for name in QUEUES},
        task_routes={f"worker.tasks.{task}": {"queue": q} for task, q in QUEUE_OF.items()},
        task_default_queue="deliver",
        task_annotations={
            f"worker.tasks.{task}": {
                "soft_time_limit": soft.total_seconds(),
                "time_limit": hard.total_seconds(),
            }
            for task, (soft, hard) in TIME_LIMITS.items()
        },
        broker_transport_options=transport_options(settings.broker_url),
        task_ignore_result=True,
        # Acknowledge after the task ran: a worker killed mid-task leaves it to be redelivered.
        # Every stage is idempotent, so running one twice is harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        enable_utc=True,
    )


def beat_schedule_filename() -> str:
    """Where beat keeps its schedule state (``SLA_BEAT_SCHEDULE``; shelve may add suffixes)."""
    return os.environ.get(
        "SLA_BEAT_SCHEDULE", str(Path(tempfile.gettempdir()) / "sla-worker-celerybeat-schedule")
    )


class _LazyConfig:
    """The app's configuration, made when Celery first needs it: from ``settings`` when
    :func:`configure` gave them, else from the environment."""

    settings: Settings | None = None

    def __call__(self) -> dict[str, object]:
        return celery_config(current_settings())


_lazy_config = _LazyConfig()


def current_settings() -> Settings:
    """The settings the app is configured from: :func:`configure`'s, else the environment."""
    return _lazy_config.settings or Settings.from_env()


#: The app ``celery -A worker.celery_app`` finds; configured on first use.
app = Celery("sla_worker", include=["worker.tasks"])
app.add_defaults(_lazy_config)


def configure(settings: Settings, **overrides: object) -> None:
    """Configure the app from ``settings`` instead of the environment, plus ``overrides``
    (Celery setting names). Call before the app is first used."""
    _lazy_config.settings = settings
    app.conf.update(overrides)


# -- logs and metrics of the worker's processes -----------------------------------------------


@after_setup_logger.connect  # type: ignore[untyped-decorator]
@after_setup_task_logger.connect  # type: ignore[untyped-decorator]
def _adopt_log_handlers(logger: logging.Logger, **_: Any) -> None:
    """Celery made its handlers (worker and beat): make them redact, and write JSON lines."""
    from worker.logs import adopt_handlers

    settings = current_settings()
    adopt_handlers(logger, json=settings.log_format == "json", secrets=settings.secrets())


class _Metrics:
    """The exporter of this worker's main process, and what it holds open."""

    exporter: Exporter | None = None
    held = ExitStack()


@celeryd_after_setup.connect  # type: ignore[untyped-decorator]
def _serve_metrics(instance: Any = None, **_: Any) -> None:
    """In the worker's main process, once its logging is set up and before the pool starts:
    serve /metrics on METRICS_PORT. A port that cannot be had is logged, not fatal:
    enforcement goes on without metrics."""
    from worker import metrics
    from worker.exporter import serve
    from worker.pipeline.context import open_context

    settings = current_settings()
    if not settings.metrics_port:
        return
    directory = metrics.multiprocess_dir()
    if directory is not None:
        metrics.clear_dead(directory)
    elif "prefork" in str(getattr(instance, "pool_cls", "")).lower():
        log.warning(
            "metrics: %s is not set, so /metrics lacks what the pool's processes record "
            "(stage runs, API errors); set it to an empty directory of this worker's own",
            metrics.MULTIPROC_ENV,
        )
    try:
        ctx = _Metrics.held.enter_context(open_context(settings))
        _Metrics.exporter = serve(settings.metrics_port, ctx, multiprocess_dir=directory)
    except OSError as e:
        _Metrics.held.close()
        log.error("metrics: cannot serve on port %d: %s", settings.metrics_port, e)
        return
    log.info("metrics: serving /metrics on port %d", _Metrics.exporter.port)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _forget_exporter(**_: Any) -> None:
    """In a pool child: the exporter's socket and connections are the main process's."""
    if _Metrics.exporter is not None:
        _Metrics.exporter.forget_after_fork()
        _Metrics.exporter = None


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _pool_process_ended(pid: int | None = None, **_: Any) -> None:
    from worker import metrics

    metrics.process_ended(pid if pid is not None else os.getpid())


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_metrics(**_: Any) -> None:
    if _Metrics.exporter is not None:
        _Metrics.exporter.close()
        _Metrics.exporter = None
    _Metrics.held.close()
