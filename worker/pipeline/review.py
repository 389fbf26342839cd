"""The review meeting's post (``review:`` in the agreement): when a slot of the cadence has come
(``worker.review_cadence``), the period it looks back on is posted to the review channel — the
headline figures against the period before, the three biggest changes in words, the trend chart
(PNG) and the CSV of every segment, uploaded with ``files_upload_v2``.

Each period is posted once: a row in ``review_posts`` (unique per channel and period) is written
before Slack is asked and marked sent after; a failed upload leaves it pending with its error
and the next run (every 15 minutes from beat) tries again. One run at a time (a lease). Only the
latest slot is ever due: a worker that was down for weeks posts the last period, not each one
it missed. As with every message, a worker killed between Slack's answer and marking the row
sent posts that period again on its next run (Slack has no idempotency key).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from worker.charts import Trend, trend_chart
from worker.config import Agreement
from worker.errors import SlaWorkerError
from worker.periods import trend_of
from worker.pipeline.context import Context
from worker.pipeline.period_report import TREND_PERIODS, build_figures, period_csv
from worker.pipeline.summary import Summary
from worker.review_cadence import Due, ReviewPlan, latest_due, parse_at
from worker.slack.review_post import review_text
from worker.slack.sender import SlackSender
from worker.store.db import session_scope
from worker.store.leases import alone
from worker.store.models import ReviewPost

log = logging.getLogger(__name__)


@dataclass
class ReviewSummary(Summary):
    #: The period posted by this run ("" when none was due).
    posted: str = ""
    #: The period that is due but failed to post (retried next run), with why.
    failed: str = ""
    already_running: bool = False

    def failure(self) -> str | None:
        return self.failed or None


def plan_of(agreement: Agreement) -> ReviewPlan | None:
    config = agreement.config.review
    if config is None:
        return None
    weekday, at = parse_at(config.at)
    zone = config.timezone or next(iter(agreement.teams.values())).calendar.timezone
    return ReviewPlan(
        config.every,
        weekday,
        at,
        ZoneInfo(zone),
        config.then.after if config.then else None,
        config.then.every if config.then else None,
    )


def run(ctx: Context, now: datetime) -> ReviewSummary:
    """The stage: post the review if a slot has come and its period is not posted yet."""
    return alone(
        ctx.sessions,
        "review",
        ctx.clock,
        lambda _lease: post_review(ctx, now, ctx.slack),
        when_busy=lambda: ReviewSummary(already_running=True),
    )


def post_review(ctx: Context, now: datetime, slack: SlackSender) -> ReviewSummary:
    agreement = ctx.agreement
    plan = plan_of(agreement)
    config = agreement.config.review
    if plan is None or config is None:
        return ReviewSummary()
    with session_scope(ctx.sessions) as session:
        first_posted = session.scalar(
            select(func.min(ReviewPost.slot_at)).where(
                ReviewPost.channel == config.channel, ReviewPost.status == "sent"
            )
        )
    due = latest_due(plan, now, first_posted)
    if due.slot > now:
        return ReviewSummary()
    row_id = _pending_row(ctx, config.channel, due, now)
    if row_id is None:
        return ReviewSummary()  # posted already
    figures = build_figures(ctx.sessions, agreement, trend_of(due.period, TREND_PERIODS), now)
    period, this, before = due.period, figures[-1], figures[-2]
    title = f"SLA review: {period.label}"
    files = [
        (f"sla-review-{_slug(period.label)}.png", title, trend_chart(Trend.of(figures), title)),
        (
            f"sla-review-{_slug(period.label)}.csv",
            f"{title} (CSV)",
            period_csv(this, period).encode("utf-8"),
        ),
    ]
    try:
        posted_as = slack.upload_files(config.channel, review_text(period, this, before), files)
    except SlaWorkerError as e:
        _mark(ctx, row_id, "pending", now, error=str(e))
        log.warning("review of %s not posted (tried again next run): %s", period.label, e)
        return ReviewSummary(failed=f"{period.label}: {e}")
    _mark(ctx, row_id, "sent", now, slack_id=posted_as)
    log.info("review of %s posted to %s", period.label, config.channel)
    return ReviewSummary(posted=period.label)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")


def _pending_row(ctx: Context, channel: str, due: Due, now: datetime) -> int | None:
    """The row of this period's post, made if new; None when it was sent already."""
    with session_scope(ctx.sessions) as session:
        row = session.scalar(
            select(ReviewPost).where(
                ReviewPost.channel == channel,
                ReviewPost.period_start == due.period.start,
                ReviewPost.period_end == due.period.end,
            )
        )
        if row is None:
            row = ReviewPost(
                channel=channel,
                period_label=due.period.label,
                period_start=due.period.start,
                period_end=due.period.end,
                slot_at=due.slot,
                status="pending",
                attempts=0,
                created_at=now,
            )
            session.add(row)
            session.flush()
        if row.status == "sent":
            return None
        row.attempts += 1
        return row.id


def _mark(
    ctx: Context,
    row_id: int,
    status: str,
    now: datetime,
    *,
    error: str | None = None,
    slack_id: str | None = None,
) -> None:
    with session_scope(ctx.sessions) as session:
        row = session.get(ReviewPost, row_id)
        assert row is not None
        row.status = status
        row.last_error = error
        if status == "sent":
            row.sent_at = now
            row.slack_id = slack_id
