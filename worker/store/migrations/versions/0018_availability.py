"""availability: reps who are away (``/sla away``, Slack statuses), the warnings their managers
got, and the Slack statuses read

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "away_periods",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("from_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("set_by", sa.String(length=320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_away_periods_email", "away_periods", ["email"])
    op.create_table(
        "away_warnings",
        sa.Column("period", sa.String(length=200), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("period", "lead_id"),
    )
    op.create_table(
        "slack_statuses",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("emoji", sa.String(length=100), nullable=False),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("looked_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email"),
    )


def downgrade() -> None:
    op.drop_table("slack_statuses")
    op.drop_table("away_warnings")
    op.drop_index("ix_away_periods_email", table_name="away_periods")
    op.drop_table("away_periods")
