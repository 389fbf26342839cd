"""recycle_approvals: recycle approval from Slack

With ``recycle.approval: required`` a recycle run proposes its due leads instead of writing
them back; each proposal waits here for a decision (a click, or the timeout's default) and is
closed when a run carried it out. At most one open proposal per lead (a partial unique index).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recycle_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("request_key", sa.String(length=120), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("lead_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("decided_by_email", sa.String(length=320), nullable=True),
        sa.Column("decided_by_name", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_recycle_approvals_open_lead",
        "recycle_approvals",
        ["lead_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.create_index("ix_recycle_approvals_lead_id", "recycle_approvals", ["lead_id", "id"])
    op.create_index("ix_recycle_approvals_request_key", "recycle_approvals", ["request_key"])


def downgrade() -> None:
    op.drop_index("ix_recycle_approvals_request_key", table_name="recycle_approvals")
    op.drop_index("ix_recycle_approvals_lead_id", table_name="recycle_approvals")
    op.drop_index("uq_recycle_approvals_open_lead", table_name="recycle_approvals")
    op.drop_table("recycle_approvals")
