"""delivery: digests, Slack threads, health

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(
            sa.Column("delivery", sa.String(length=10), nullable=False, server_default="direct")
        )
    op.create_table(
        "slack_threads",
        sa.Column("recipient", sa.String(length=400), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("recipient", "lead_id"),
    )
    op.create_table(
        "health",
        sa.Column("component", sa.String(length=40), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("component"),
    )


def downgrade() -> None:
    op.drop_table("health")
    op.drop_table("slack_threads")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("delivery")
