"""recycle: the reason a lead is due, and the audit of every write-back

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.add_column(sa.Column("recycle_reason", sa.Text(), nullable=True))
    op.create_table(
        "recycle_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recycle_audit") as batch_op:
        batch_op.create_index("ix_recycle_audit_run_id", ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recycle_audit") as batch_op:
        batch_op.drop_index("ix_recycle_audit_run_id")
    op.drop_table("recycle_audit")
    with op.batch_alter_table("leads") as batch_op:
        batch_op.drop_column("recycle_reason")
