"""The worker's Prometheus series that processes record as they work: stage runs, errors of the
CRM and Slack, the CRM request budget. :mod:`worker.exporter` serves them with the gauges read
from the store.

Celery's prefork pool runs the tasks in child processes, which the exporter in the worker's
main process cannot see into. With ``PROMETHEUS_MULTIPROC_DIR`` set before the worker starts,
prometheus_client writes every process's values to files in that directory (one per process
and metric type) and the exporter adds them up (``MultiProcessCollector``); :func:`clear_dead`
wipes a previous run's files at start, :func:`process_ended` drops an ended child's live
gauges. Without the variable each process keeps its own values in memory (tests, a worker
with ``--pool=solo``), and so does every CLI command (:func:`keep_in_process`). Recording must
never fail or slow a stage, and no label may carry a lead, a person or a secret: every label
takes a small, fixed set of values.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram, multiprocess, values

from worker.errors import AuthError, PermanentError, SlaWorkerError, TransientError

T = TypeVar("T")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

STAGE_DURATION = Histogram(
    "sla_worker_stage_duration_seconds",
    "How long a stage run took, failed runs included.",
    ["stage"],
    # From a quiet deliver pass (milliseconds) to a first sync of a large portal (45 min).
    buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 900, 1800, 2700),
)
STAGE_LAST_SUCCESS = Gauge(
    "sla_worker_stage_last_success_timestamp_seconds",
    "Unix time at which a run of the stage last ended without failure.",
    ["stage"],
    # The latest of every process's, ended ones included: a recycled child keeps its success.
    multiprocess_mode="max",
)
STAGE_FAILURES = Counter(
    "sla_worker_stage_failures_total",
    "Stage runs that raised or reported a failure (the work is kept for the next run).",
    ["stage"],
)
API_ERRORS = Counter(
    "sla_worker_api_errors_total",
    "Failed requests to an external system by the project's error kind and the system's code "
    "(empty when the system gave none). Retried attempts count one each.",
    ["system", "kind", "code"],
)
RATELIMIT_REQUESTS = Counter(
    "sla_worker_ratelimit_requests_total",
    "Requests this worker sent within a CRM request budget.",
    ["bucket"],
)
RATELIMIT_WAIT = Counter(
    "sla_worker_ratelimit_wait_seconds_total",
    "Time spent waiting for the request budget (or a 429's pause) before sending.",
    ["bucket"],
)
RATELIMIT_BUDGET = Gauge(
    "sla_worker_ratelimit_budget_requests_per_second",
    "The configured budget (crm.rate_limit) as requests per second, to divide the rate by.",
    ["bucket"],
    multiprocess_mode="mostrecent",
)


def stage_finished(stage: str, took: timedelta, *, ok: bool) -> None:
    """One run of ``stage`` ended after ``took``, without failure when ``ok``."""
    STAGE_DURATION.labels(stage).observe(took.total_seconds())
    if ok:
        STAGE_LAST_SUCCESS.labels(stage).set_to_current_time()
    else:
        STAGE_FAILURES.labels(stage).inc()


def count_error(system: str, error: SlaWorkerError) -> None:
    """One failed request to ``system`` (``hubspot``, ``slack``)."""
    kind = (
        "auth"
        if isinstance(error, AuthError)
        else "permanent"
        if isinstance(error, PermanentError)
        else "transient"
        if isinstance(error, TransientError)
        else "other"
    )
    code = getattr(error, "code", None) or ""
    API_ERRORS.labels(system.lower(), kind, code).inc()


def counting_errors(system: str, attempt: Callable[[], T]) -> T:
    """``attempt()``, its project error counted for ``system`` on the way out."""
    try:
        return attempt()
    except SlaWorkerError as e:
        count_error(system, e)
        raise


def budget_set(bucket: str, requests_per_second: float) -> None:
    RATELIMIT_BUDGET.labels(bucket).set(requests_per_second)


def budget_spent(bucket: str, waited: timedelta) -> None:
    """One request sent in ``bucket`` after waiting ``waited`` for the budget."""
    RATELIMIT_REQUESTS.labels(bucket).inc()
    if waited > timedelta(0):
        RATELIMIT_WAIT.labels(bucket).inc(waited.total_seconds())


def multiprocess_dir() -> Path | None:
    """Where the processes of this worker write their values, when they share them."""
    value = os.environ.get(MULTIPROC_ENV, "").strip()
    return Path(value) if value else None


def clear_dead(directory: Path) -> int:
    """Delete the files of earlier processes (a previous run of the worker): their values would
    be added to this run's. Call in the worker's main process before the pool starts. Returns
    how many files were deleted."""
    directory.mkdir(parents=True, exist_ok=True)
    mine = f"_{os.getpid()}.db"
    deleted = 0
    for path in directory.glob("*.db"):
        if not path.name.endswith(mine):
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def keep_in_process() -> None:
    """This process's values stay in its own memory even with ``PROMETHEUS_MULTIPROC_DIR``
    set: a CLI command run in a worker's container (its healthcheck, every minute) must not
    leave files in the worker's directory, whose exporter would read them on every scrape.
    Call before anything is recorded (every series here has labels: values are made on first
    use, from the value class in force then)."""
    values.ValueClass = values.MutexValue


def process_ended(pid: int) -> None:
    """Forget an ended process's live gauges (its counters and histograms keep counting)."""
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
