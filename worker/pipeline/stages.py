"""The stage protocol and the stages by name: what Celery tasks and the CLI run.

Every stage is a function ``run(ctx, now) -> Summary`` (some take keyword options, such as
``dry_run``). :func:`run_stage` reads the context's clock once and hands that instant to the
stage, so a stage never reads the clock itself and a test controls time by its clock. It also
records each run: in the store for ``health``, in the Prometheus series (``worker.metrics``),
and as the ``stage`` and ``run_id`` of every log line the run writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from worker import metrics
from worker.errors import ConfigError, SlaWorkerError
from worker.logs import log_fields, new_run_id
from worker.pipeline import deliver, evaluate, prune, recycle, report, review, sync
from worker.pipeline.context import Context
from worker.pipeline.deliver import Post
from worker.pipeline.summary import Summary
from worker.store import outbox
from worker.store.db import session_scope

log = logging.getLogger(__name__)

#: ``run(ctx, now, **options) -> Summary``.
Stage = Callable[..., Summary]


STAGES: dict[str, Stage] = {
    "sync": sync.run,
    "evaluate": evaluate.run,
    "deliver": deliver.run,
    "recycle": recycle.run,
    "report": report.run,
    "review": review.run,
    "prune": prune.run,
}

#: What ``run-once`` and the demo run, in this order.
ONCE = ("sync", "evaluate", "deliver")


def run_stage(ctx: Context, name: str, **options: Any) -> Summary:
    """Run the stage ``name`` now, reading the clock once, under the config file as it is now
    (an invalid edit is refused: the last good config runs, and ``health`` says so)."""
    now = ctx.clock()
    started = time.perf_counter()
    with log_fields(stage=name, run_id=new_run_id()):
        ctx.reload(now)
        try:
            summary = STAGES[name](ctx, now, **options)
        except Exception as e:
            _record(ctx, name, now, f"{type(e).__name__}: {e}", started)
            raise
        _record(ctx, name, now, summary.failure(), started)
    return summary


def _record(ctx: Context, name: str, now: datetime, error: str | None, started: float) -> None:
    """When the stage last succeeded or failed, for ``health``, and how long it took, for
    metrics (never fails the stage)."""
    took = timedelta(seconds=time.perf_counter() - started)
    metrics.stage_finished(name, took, ok=error is None)
    try:
        with session_scope(ctx.sessions) as session:
            outbox.record_stage_run(session, name, now, error)
    except SQLAlchemyError as e:
        log.warning("could not record the %s run for health: %s", name, type(e).__name__)


def preview(ctx: Context) -> list[Post]:
    """What deliver would send, as if the grouping window had passed (``--dry-run``)."""
    return deliver.preview(ctx, ctx.clock() + timedelta(days=1))


class StageFailed(SlaWorkerError):
    """A stage could not do its job this time; what it had to do is kept for its next run."""


def run_once(ctx: Context, *, dry_run: bool = False) -> dict[str, object]:
    """sync → evaluate → deliver, synchronously. A stage that fails (the CRM down, a token
    rejected) does not stop the others: leads already stored are still judged and their
    notices still sent. ``failed`` maps each failed stage to its reason. A dry run reads the
    CRM and judges leads but sends nothing and writes nothing to the CRM; it returns what
    would be sent. A configuration error stops everything (an admin must act)."""
    result: dict[str, object] = {}
    failed: dict[str, str] = {}
    for name in ONCE:
        if dry_run and name == "deliver":
            result["would_send"] = preview(ctx)
            continue
        try:
            summary = run_stage(ctx, name)
        except ConfigError:
            raise
        except SlaWorkerError as e:
            log.error("%s failed: %s; the other stages go on", name, e)
            failed[name] = str(e)
            continue
        result[name] = summary.as_dict()
        if summary.failure() is not None:
            failed[name] = str(summary.failure())
    result["failed"] = failed
    return result
