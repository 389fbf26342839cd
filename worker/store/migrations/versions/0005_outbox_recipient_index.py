"""outbox: index unsent rows by recipient, so a claim reads one recipient's rows, not all

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_recipient_unsent",
        "outbox",
        ["recipient", "status"],
        postgresql_where=sa.text("status <> 'sent'"),
        sqlite_where=sa.text("status <> 'sent'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_recipient_unsent", table_name="outbox")
