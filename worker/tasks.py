"""Celery tasks: thin wrappers that call one pipeline stage and return its summary.

The context (config, database, clients) is built once per worker process.
"""

from __future__ import annotations

import functools
import logging

from worker.celery_app import app
from worker.pipeline import stages
from worker.pipeline.context import Context, build_context
from worker.settings import Settings

log = logging.getLogger(__name__)


@functools.cache
def _context() -> Context:
    return build_context(Settings.from_env())


@app.task(name="worker.tasks.sync")  # type: ignore[untyped-decorator]
def sync() -> dict[str, object]:
    return stages.run_sync(_context()).as_dict()


@app.task(name="worker.tasks.evaluate")  # type: ignore[untyped-decorator]
def evaluate() -> dict[str, object]:
    return dict(stages.run_evaluate(_context()).as_dict())


@app.task(name="worker.tasks.deliver")  # type: ignore[untyped-decorator]
def deliver() -> dict[str, object]:
    return stages.run_deliver(_context()).as_dict()


@app.task(name="worker.tasks.prune")  # type: ignore[untyped-decorator]
def prune() -> dict[str, int]:
    return stages.run_prune(_context())


@app.task(name="worker.tasks.recycle")  # type: ignore[untyped-decorator]
def recycle() -> dict[str, object]:
    return stages.run_recycle(_context()).as_dict()


@app.task(name="worker.tasks.report")  # type: ignore[untyped-decorator]
def report() -> dict[str, object]:
    built, queued = stages.run_report(_context(), post=True)
    return {"queued": queued, "reps": len(built.by_rep)}
