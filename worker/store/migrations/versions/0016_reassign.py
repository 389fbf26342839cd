"""reassign: when a lead was first assigned (policies whose clocks survive a reassignment)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.add_column(
            sa.Column("first_assigned_at", sa.DateTime(timezone=True), nullable=True)
        )
    # Leads stored before: their current assignment is the first the worker knows of.
    op.execute(
        "UPDATE leads SET first_assigned_at = COALESCE(owner_assigned_at, created_at) "
        "WHERE owner_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.drop_column("first_assigned_at")
