"""The stages bound to a :class:`Context`: what Celery tasks and ``sla-worker run-once`` call.

Each function takes the context and returns a small JSON-able summary; ``now`` comes from the
context's clock, read once per stage.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from worker.errors import AuthError
from worker.pipeline.context import Context
from worker.pipeline.deliver import DeliverSummary, Rendered, deliver, preview
from worker.pipeline.evaluate import EvaluateSummary, evaluate
from worker.pipeline.recycle import RecycleSummary, recycle, undo
from worker.pipeline.report import Report, build_report, queue_marketing_report
from worker.pipeline.sync import SyncSummary, sync
from worker.store import outbox
from worker.store.db import session_scope
from worker.store.leases import Lease, LeaseLost

log = logging.getLogger(__name__)


def run_sync(ctx: Context) -> SyncSummary:
    """One sync pass, unless another worker runs one (a lease: each would spend the same CRM
    request budget on the same pages); whether the CRM accepted our credentials is kept for
    ``health``."""
    with Lease(ctx.sessions, "sync", ctx.clock) as lease:
        if not lease.held:
            log.info("sync: another worker is running a sync; this pass is skipped")
            return SyncSummary(already_running=True)
        try:
            return _sync_holding_lease(ctx, lease)
        except LeaseLost as e:
            log.warning("sync stopped after its last committed page: %s", e)
            return SyncSummary(already_running=True)


def _sync_holding_lease(ctx: Context, lease: Lease) -> SyncSummary:
    crm = ctx.rules.config.crm
    try:
        summary = sync(
            ctx.crm,
            ctx.sessions,
            ctx.clock(),
            touch_kinds=tuple(crm.touch_types),
            cursor_prefix=crm.provider,
            overlap=crm.sync_overlap,
            track_archived=crm.track_archived,
            heartbeat=lease.renew,
        )
    except AuthError as e:
        with session_scope(ctx.sessions) as session:
            outbox.set_health(
                session, "crm", False, f"the CRM rejected the token: {e.code}", ctx.clock()
            )
        raise
    with session_scope(ctx.sessions) as session:
        outbox.set_health(session, "crm", True, "", ctx.clock())
    return summary


def run_evaluate(ctx: Context) -> EvaluateSummary:
    return evaluate(ctx.rules, ctx.sessions, ctx.clock())


def run_deliver(ctx: Context) -> DeliverSummary:
    return deliver(ctx.slack, ctx.sessions, ctx.rules, ctx.clock(), pacer=ctx.pacer)


def run_prune(ctx: Context) -> dict[str, int]:
    """Forget finished notices older than ``notifications.keep_sent_for`` (see outbox.prune)."""
    keep_for = ctx.rules.config.notifications.keep_sent_for
    with session_scope(ctx.sessions) as session:
        deleted = outbox.prune(session, ctx.clock() - keep_for)
    return {"deleted": deleted}


def run_recycle(ctx: Context, *, dry_run: bool = False) -> RecycleSummary:
    return recycle(ctx.crm, ctx.sessions, ctx.rules, ctx.clock(), dry_run=dry_run)


def run_undo_recycle(ctx: Context, run_id: str) -> RecycleSummary:
    return undo(ctx.crm, ctx.sessions, run_id, ctx.clock())


def run_report(ctx: Context, *, post: bool = False) -> tuple[Report, bool]:
    """The compliance report; with ``post``, marketing's part is queued for its channel
    (once a day) and goes out with the next deliver pass."""
    now = ctx.clock()
    report = build_report(ctx.sessions, ctx.rules, now)
    queued = queue_marketing_report(ctx.sessions, ctx.rules, report, now) if post else False
    return report, queued


def run_preview(ctx: Context) -> list[Rendered]:
    # A dry run shows everything pending, as if the grouping window had passed.
    return preview(ctx.sessions, ctx.clock() + timedelta(days=1))


def run_once(ctx: Context, *, dry_run: bool = False) -> dict[str, object]:
    """sync → evaluate → deliver, synchronously. A dry run reads the CRM and judges leads but
    sends nothing and writes nothing to the CRM; it returns what would be sent."""
    result: dict[str, object] = {
        "sync": run_sync(ctx).as_dict(),
        "evaluate": run_evaluate(ctx).as_dict(),
    }
    if dry_run:
        result["would_send"] = run_preview(ctx)
    else:
        result["deliver"] = run_deliver(ctx).as_dict()
    return result
