"""Prune: the outbox forgets finished notices older than ``notifications.keep_sent_for``, except
those that still keep a notice from going out twice (see ``outbox.prune``). Housekeeping only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from worker.pipeline.context import Context
from worker.pipeline.summary import Summary
from worker.store import outbox
from worker.store.db import session_scope


@dataclass
class PruneSummary(Summary):
    deleted: int = 0


def run(ctx: Context, now: datetime) -> PruneSummary:
    keep_for = ctx.agreement.config.notifications.keep_sent_for
    with session_scope(ctx.sessions) as session:
        return PruneSummary(deleted=outbox.prune(session, now - keep_for))
