"""Celery tasks: thin wrappers that run one stage and return its summary as a dict.

A worker process opens its context (config, database, clients) once, on first use, and closes
it when the process shuts down; :func:`bound_to` lends the tasks a context instead (the demo
runs them in-process that way). No import here reads the config or opens anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from celery.signals import worker_process_shutdown

from worker.celery_app import app
from worker.pipeline.context import Context, freeze_long_lived_objects, open_context
from worker.pipeline.stages import StageFailed, run_stage
from worker.settings import Settings

_process = ExitStack()
_context: Context | None = None


def _ctx() -> Context:
    global _context
    if _context is None:
        _context = _process.enter_context(open_context(Settings.from_env()))
        freeze_long_lived_objects()  # what the context holds lives as long as the process
    return _context


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _close(**_: Any) -> None:
    global _context
    _context = None
    _process.close()


@contextmanager
def bound_to(ctx: Context) -> Iterator[None]:
    """Run the tasks against ``ctx`` inside this block."""
    global _context
    previous, _context = _context, ctx
    try:
        yield
    finally:
        _context = previous


def _run_now(name: str, **options: Any) -> dict[str, object]:
    """Run the stage ``name`` now; its summary, or a failed task (the work itself is kept for
    the next run)."""
    summary = run_stage(_ctx(), name, **options)
    failure = summary.failure()
    if failure is not None:
        raise StageFailed(f"{name}: {failure}")
    return summary.as_dict()


def _stage_task(name: str, **options: Any) -> Any:
    """The Celery task ``worker.tasks.<name>``: run that stage now, return its summary."""

    def run_stage_now() -> dict[str, object]:
        return _run_now(name, **options)

    run_stage_now.__name__ = run_stage_now.__qualname__ = name
    return app.task(name=f"worker.tasks.{name}")(run_stage_now)


sync = _stage_task("sync")
deliver = _stage_task("deliver")
prune = _stage_task("prune")
recycle = _stage_task("recycle")
report = _stage_task("report", post=True)
review = _stage_task("review")

#: Workers an evaluate pass with more than a batch due asks to join it (PostgreSQL, where a
#: pass is shared batch by batch): as many as a large deployment runs evaluate processes. A
#: helper that finds nothing left ends at once; one not picked up within the time expires.
EVALUATE_HELPERS = 3
HELPER_EXPIRES = 300


def _ask_for_helpers() -> None:
    for _ in range(EVALUATE_HELPERS):
        evaluate.apply_async(kwargs={"helping": True}, expires=HELPER_EXPIRES)


@app.task(name="worker.tasks.evaluate")  # type: ignore[untyped-decorator]
def evaluate(helping: bool = False) -> dict[str, object]:
    """Judge the due leads; a pass that finds many asks idle workers to share it."""
    return _run_now("evaluate", fan_out=None if helping else _ask_for_helpers)


@app.task(name="worker.tasks.slack_command")  # type: ignore[untyped-decorator]
def slack_command(
    user_id: str, text: str, response_url: str, command: str = "/sla"
) -> dict[str, object]:
    """Answer a ``/sla`` command that ``sla-worker web`` acknowledged, to its caller only."""
    from worker.pipeline import slack_commands

    ctx = _ctx()
    now = ctx.clock()
    ctx.reload(now)  # a new slack.admins applies from the next command on
    request = slack_commands.SlashCommand(user_id, text, response_url, command)
    return slack_commands.run(ctx, now, request).as_dict()


@app.task(name="worker.tasks.slack_action")  # type: ignore[untyped-decorator]
def slack_action(**action: Any) -> dict[str, object]:
    """Carry out a button click that ``sla-worker web`` acknowledged (*Acknowledge*,
    *Snooze*, *Logged a touch*)."""
    from worker.pipeline import slack_actions

    ctx = _ctx()
    now = ctx.clock()
    ctx.reload(now)  # a new slack.admins applies from the next click on
    return slack_actions.run(ctx, now, slack_actions.BlockAction(**action)).as_dict()
