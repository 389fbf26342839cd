"""SQLAlchemy 2 models of everything the worker keeps: CRM mirror, findings and the outbox.

Datetimes are stored and returned as aware UTC on every backend (SQLite keeps no zone, so
:class:`UtcDateTime` adds it back). Schema changes go through Alembic migrations only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from worker.names import display_name


class UtcDateTime(TypeDecorator[datetime]):
    """An aware-UTC datetime on every backend; naive datetimes are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC")
        value = value.astimezone(UTC)
        # SQLite stores text without a zone: store the UTC wall time, add the zone back on read.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # PostgreSQL (the session is in UTC)
            return value
        if value.tzinfo is None:  # SQLite: the UTC wall time
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


class Owner(Base):
    """A CRM user who can own leads."""

    __tablename__ = "owners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    teams: Mapped[list[str]] = mapped_column(JSON, default=list)
    synced_at: Mapped[datetime]

    @property
    def display_name(self) -> str:
        return display_name(self.first_name, self.last_name, self.email, self.id)


class Lead(Base):
    """The CRM's view of a lead, plus the evaluate stage's bookkeeping."""

    __tablename__ = "leads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    owner_id: Mapped[str | None] = mapped_column(String(64))
    owner_assigned_at: Mapped[datetime | None]
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str | None] = mapped_column(String(100))
    score: Mapped[float | None] = mapped_column(Float)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    synced_at: Mapped[datetime]
    #: Set by sync when anything the engine reads changed; cleared by evaluate.
    dirty: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Counts the changes that marked the lead dirty (``mirror.DIRTY``): evaluate clears
    #: ``dirty`` only if no change came in after it read the lead.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: From the engine: the earliest instant the SLA state can change without new data.
    next_check_at: Mapped[datetime | None]
    #: From the engine: why the lead is due to go back to marketing (None: it is not).
    recycle_reason: Mapped[str | None] = mapped_column(Text)
    #: Required fields (marketing.required_fields) the lead lacked when last evaluated.
    missing_fields: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    #: When the lead was first seen complete (the clock start with incomplete_clock: wait).
    complete_since: Mapped[datetime | None]
    #: The first assignment the worker saw (the CRM's owner-assigned date, else creation),
    #: kept through reassignments; cleared when the lead loses its owner. The clock start of
    #: policies with ``reassign_restarts_first_touch: false``.
    first_assigned_at: Mapped[datetime | None]

    @property
    def display_name(self) -> str:
        return display_name(self.first_name, self.last_name, self.email, self.id)

    def mark_dirty(self) -> None:
        """To be judged again: a change the next evaluate pass must see."""
        self.dirty = True
        if self.revision is not None:  # stored already: counted in SQL, never from a stale copy
            self.revision = Lead.revision + 1

    @staticmethod
    def dirty_values() -> dict[str, Any]:
        """:meth:`mark_dirty` for an UPDATE statement's ``values``."""
        return {"dirty": True, "revision": Lead.revision + 1}

    __table_args__ = (
        # Due leads by index alone: the dirty ones by id, the others by next check (queries).
        Index(
            "ix_leads_dirty_id",
            "id",
            postgresql_where=text("dirty = true"),
            sqlite_where=text("dirty = 1"),
        ),
        Index("ix_leads_next_check_at_id", "next_check_at", "id"),
        Index("ix_leads_owner_id", "owner_id"),
    )


class LeadStatusChange(Base):
    """A lead status as sync observed it change; the engine reads pauses and returns from it."""

    __tablename__ = "lead_status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    status: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("ix_lead_status_changes_lead_id_at", "lead_id", "at"),)


class Touch(Base):
    """A sales activity from the CRM (call, email, meeting, …)."""

    __tablename__ = "touches"

    #: ``<kind>:<crm id>``: CRM ids are only unique per activity type.
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    modified_at: Mapped[datetime]
    owner_id: Mapped[str | None] = mapped_column(String(64))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    direction: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(50))
    synced_at: Mapped[datetime]


class TouchLead(Base):
    """Which leads a touch is associated with (a meeting can involve several)."""

    __tablename__ = "touch_leads"

    touch_id: Mapped[str] = mapped_column(
        ForeignKey("touches.id", ondelete="CASCADE"), primary_key=True
    )
    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_touch_leads_lead_id", "lead_id"),)


class StageLease(Base):
    """Which worker runs a single-flight stage (sync) now, and until when its claim holds."""

    __tablename__ = "stage_leases"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    leased_until: Mapped[datetime | None]


class SyncCursor(Base):
    """How far an incremental sync has committed: the last modified time fully stored."""

    __tablename__ = "sync_cursors"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    modified_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Every change before this instant has been read (a whole pass ended after it plus the
    #: search index lag): the next pass need not read before it again.
    settled_at: Mapped[datetime | None]


class Finding(Base):
    """The latest engine verdict for one rule of one lead (what `explain` and reports read)."""

    __tablename__ = "findings"

    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(40), primary_key=True)
    policy: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    met_at: Mapped[datetime | None]
    detail: Mapped[str] = mapped_column(Text, default="")
    #: The deadline whose breach was last announced: a later met_late on it is "resolved".
    breached_deadline_at: Mapped[datetime | None]
    #: When the verdict was last written: the pass that found it, or that changed it (a pass
    #: that reaches the same verdict does not write it again).
    evaluated_at: Mapped[datetime]

    __table_args__ = (
        # Open breaches, counted at every metrics scrape (worker.store.stats).
        Index(
            "ix_findings_breached",
            "rule",
            "policy",
            "lead_id",
            postgresql_where=text("state = 'breached'"),
            sqlite_where=text("state = 'breached'"),
        ),
    )


class OutboxRow(Base):
    """A notice to deliver to one recipient, written in the same transaction as the finding
    that causes it. Only ``worker.store.outbox`` writes it (enqueue and named transitions).

    ``dedup_key`` is unique: the same (lead, rule, deadline, level, repeat, recipient) can be
    written any number of times and is delivered once.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(500), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # a NoticeKind
    lead_id: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(40))
    level: Mapped[int] = mapped_column(Integer, default=0)
    #: ``email:<address>`` or ``channel:<#name or id>``.
    recipient: Mapped[str] = mapped_column(String(400))
    #: An ``outbox.Delivery``: ``direct`` (grouped per recipient), ``digest`` or ``report``.
    delivery: Mapped[str] = mapped_column(String(10), default="direct", server_default="direct")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    #: Not to be sent before this (grouping window, quiet hours, retry backoff).
    due_at: Mapped[datetime]
    #: An ``outbox.Status``: pending | sending | sent | failed | rerouted | superseded.
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    leased_until: Mapped[datetime | None]
    #: The deliver pass that holds the claim (``leases.new_holder()``); None when unclaimed.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    slack_channel: Mapped[str | None] = mapped_column(String(64))
    slack_ts: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(
            "ix_outbox_unsent",
            "status",
            "due_at",
            postgresql_where=text("status <> 'sent'"),
            sqlite_where=text("status <> 'sent'"),
        ),
        # By lead, with the keys: evaluate reads which notices exist from the index alone.
        Index("ix_outbox_lead_id_keys", "lead_id", "dedup_key"),
        # A claim takes one recipient's sendable rows (outbox.claim).
        Index(
            "ix_outbox_recipient_unsent",
            "recipient",
            "status",
            postgresql_where=text("status <> 'sent'"),
            sqlite_where=text("status <> 'sent'"),
        ),
    )


class SlackUserCache(Base):
    """Slack user ids looked up by e-mail, with when they were looked up (a cache with a TTL)."""

    __tablename__ = "slack_users"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(64))  # None: Slack knows no such user
    tz: Mapped[str | None] = mapped_column(String(64))
    #: The real name on the Slack profile (what an acknowledgement says); None before 0014.
    name: Mapped[str | None] = mapped_column(String(200))
    looked_up_at: Mapped[datetime]


class SlackThread(Base):
    """The message that first named a lead to a recipient: later updates reply in its thread."""

    __tablename__ = "slack_threads"

    recipient: Mapped[str] = mapped_column(String(400), primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class AgreementApplied(Base):
    """The fingerprint of the agreement the stored findings were made under: when the config
    changes, every open lead is judged again under the new one."""

    __tablename__ = "agreement_applied"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime]


class StageRun(Base):
    """When each stage last ran and last succeeded, for ``sla-worker health``: a worker that
    hangs or keeps failing shows as a stage that has not succeeded for too long."""

    __tablename__ = "stage_runs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_ok_at: Mapped[datetime | None]
    last_failed_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")


class HealthCheck(Base):
    """Whether a part that talks to the outside world works: ``sla-worker health`` reads it."""

    __tablename__ = "health"

    component: Mapped[str] = mapped_column(String(40), primary_key=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]


class RecycleAudit(Base):
    """Every write-back of a recycle run, with the values before and after, for undo."""

    __tablename__ = "recycle_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(40))
    lead_id: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: writing (crash window: treated as written) | done | failed | undone
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]

    __table_args__ = (Index("ix_recycle_audit_run_id", "run_id"),)


class RecycleApproval(Base):
    """A due lead a recycle run proposed instead of writing back (``recycle.approval:
    required``): the decision someone took in Slack (or the timeout's default), and what the
    next run did with it. Open until closed (written back, kept, withdrawn); at most one open
    proposal per lead."""

    __tablename__ = "recycle_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(64))
    #: The run that proposed it, and the request message (its outbox dedup key) listing it.
    run_id: Mapped[str] = mapped_column(String(40))
    request_key: Mapped[str] = mapped_column(String(120))
    owner_id: Mapped[str | None] = mapped_column(String(64))
    #: The engine's reason, as proposed.
    reason: Mapped[str] = mapped_column(Text)
    #: The lead's CRM modification time when proposed: a kept lead is proposed again only
    #: after it changed in the CRM since (a touch, a status change).
    lead_modified_at: Mapped[datetime]
    proposed_at: Mapped[datetime]
    #: When an unanswered proposal gets ``recycle.approval_default``.
    expires_at: Mapped[datetime]
    #: None (waiting) | approve | keep | timeout-approve | timeout-keep
    decision: Mapped[str | None] = mapped_column(String(20))
    #: Who decided: their Slack profile's e-mail and name ("timeout" for a timeout).
    decided_by_email: Mapped[str | None] = mapped_column(String(320))
    decided_by_name: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: What came of it once closed: ``recycled (run …)``, ``kept``, ``withdrawn: …``.
    outcome: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index(
            "uq_recycle_approvals_open_lead",
            "lead_id",
            unique=True,
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
        Index("ix_recycle_approvals_lead_id", "lead_id", "id"),
        Index("ix_recycle_approvals_request_key", "request_key"),
    )


class Action(Base):
    """Every command or action someone took from Slack, and what came of it (an audit)."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    slack_user_id: Mapped[str] = mapped_column(String(64))
    #: The e-mail Slack gave for the user (None: it gave none, so nothing was allowed).
    email: Mapped[str | None] = mapped_column(String(320))
    #: What was asked: ``/sla explain 1001``, later ``acknowledge`` and the like.
    action: Mapped[str] = mapped_column(String(400))
    lead_id: Mapped[str | None] = mapped_column(String(64))
    #: ``answered``, ``refused``, ``not found``, ``usage`` … with the reason when there is one.
    outcome: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_actions_at", "at"),
        # A lead's actions, for ``explain``.
        Index("ix_actions_lead_id", "lead_id"),
    )


class Acknowledgement(Base):
    """A breach someone acknowledged from Slack (a digest's *Acknowledge* button): no repeat
    and no further escalation level of it is sent. One breach is (lead, rule, breached
    deadline), as the outbox's dedup keys start; acknowledged once, by the first to click."""

    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(40))
    deadline_at: Mapped[datetime]
    #: The Slack profile's e-mail of who clicked (permissions were checked against it).
    by_email: Mapped[str] = mapped_column(String(320))
    by_slack_user_id: Mapped[str] = mapped_column(String(64))
    #: Their Slack real name (the e-mail when Slack gave none): what messages say.
    by_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("lead_id", "rule", "deadline_at", name="uq_acknowledgements_breach"),
    )


class Snooze(Base):
    """A breach or warning whose reminders to the rep someone snoozed from Slack (a rep
    reminder's *Snooze* buttons): no level-0 reminder of it falls due before ``until``, when
    one returns. Escalation levels above the rep are not affected. One live snooze per breach
    (lead, rule, deadline); a later click replaces it."""

    __tablename__ = "snoozes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(40))
    deadline_at: Mapped[datetime]
    #: When the reminders return (already bounded by ``slack.max_snooze``, in working hours).
    until: Mapped[datetime]
    #: The Slack profile's e-mail of who clicked, and their Slack real name.
    by_email: Mapped[str] = mapped_column(String(320))
    by_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("lead_id", "rule", "deadline_at", name="uq_snoozes_breach"),)


class AwayPeriod(Base):
    """A time a rep is away, from ``/sla away`` (``source`` ``command``) or seen in their Slack
    status (``slack_status``): their reminders go to the team's cover meanwhile. ``until``
    None: no end given; ``ended_at``: ended early (``/sla back``, the status cleared). Kept
    after it ends, for ``explain``."""

    __tablename__ = "away_periods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The rep's e-mail, lower case.
    email: Mapped[str] = mapped_column(String(320), index=True)
    source: Mapped[str] = mapped_column(String(20))
    from_at: Mapped[datetime]
    until: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    #: Who said so: the e-mail of who typed ``/sla away``, or the Slack status as read.
    set_by: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime]


class AwayWarning(Base):
    """A lead the manager was warned about while its owner was away: one warning per lead per
    away period (``period``: ``AwayPeriod`` id or a config entry's key)."""

    __tablename__ = "away_warnings"

    period: Mapped[str] = mapped_column(String(200), primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime]


class SlackStatus(Base):
    """A person's Slack status as last read (``users.info``), trusted for
    ``away.status_cache_for``. ``expires_at`` None: the status does not expire."""

    __tablename__ = "slack_statuses"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    emoji: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    looked_up_at: Mapped[datetime]


class ReviewPost(Base):
    """The review meeting's post of one period to one channel: written ``pending`` before Slack
    is asked, ``sent`` after (``pipeline/review.py``); a failed upload stays pending with its
    error and is tried again."""

    __tablename__ = "review_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(100))
    period_label: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    #: The cadence's slot that made it due.
    slot_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20))  # pending | sent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: What Slack gave back for the post (the file id of the chart).
    slack_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("channel", "period_start", "period_end", name="uq_review_posts_period"),
    )
