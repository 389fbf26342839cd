"""reports get a delivery of their own: deliver picks a renderer by delivery, never by kind

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE outbox SET delivery = 'report' WHERE kind = 'report'")


def downgrade() -> None:
    op.execute("UPDATE outbox SET delivery = 'direct' WHERE delivery = 'report'")
