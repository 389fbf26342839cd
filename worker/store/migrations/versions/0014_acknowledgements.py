"""acknowledgements: breaches acknowledged from Slack; Slack users' names; actions by lead

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acknowledgements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_email", sa.String(length=320), nullable=False),
        sa.Column("by_slack_user_id", sa.String(length=64), nullable=False),
        sa.Column("by_name", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lead_id", "rule", "deadline_at", name="uq_acknowledgements_breach"),
    )
    with op.batch_alter_table("slack_users") as batch:
        batch.add_column(sa.Column("name", sa.String(length=200), nullable=True))
    op.create_index("ix_actions_lead_id", "actions", ["lead_id"])


def downgrade() -> None:
    op.drop_index("ix_actions_lead_id", table_name="actions")
    with op.batch_alter_table("slack_users") as batch:
        batch.drop_column("name")
    op.drop_table("acknowledgements")
