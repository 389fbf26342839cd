"""completeness: the required fields a lead lacks, and since when it is complete

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.add_column(
            sa.Column("missing_fields", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("complete_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.drop_column("complete_since")
        batch_op.drop_column("missing_fields")
