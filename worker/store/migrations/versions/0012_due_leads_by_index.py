"""leads: find due leads by index alone, and a revision that keeps a change made mid-pass dirty

A partial index on the ids of dirty leads and one on (next_check_at, id) let an evaluate pass
walk each kind of due lead in key order, batch after batch, without rescanning the table; the
boolean index on ``dirty`` they replace could not. Open breaches are counted (metrics, at every
scrape) from a partial index of breached findings. The outbox's index by lead carries the dedup
keys, so a pass learns which of a batch's notices exist from the index alone. ``revision``
counts the changes that mark a lead dirty: a pass clears ``dirty`` only when the revision is
still the one it judged.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_index("ix_leads_dirty")
        batch_op.drop_index("ix_leads_next_check_at")
    op.create_index(
        "ix_leads_dirty_id",
        "leads",
        ["id"],
        postgresql_where=sa.text("dirty = true"),
        sqlite_where=sa.text("dirty = 1"),
    )
    op.create_index("ix_leads_next_check_at_id", "leads", ["next_check_at", "id"])
    op.create_index(
        "ix_findings_breached",
        "findings",
        ["rule", "policy", "lead_id"],
        postgresql_where=sa.text("state = 'breached'"),
        sqlite_where=sa.text("state = 'breached'"),
    )

    op.drop_index("ix_outbox_lead_id", table_name="outbox")
    op.create_index("ix_outbox_lead_id_keys", "outbox", ["lead_id", "dedup_key"])


def downgrade() -> None:
    op.drop_index("ix_outbox_lead_id_keys", table_name="outbox")
    op.create_index("ix_outbox_lead_id", "outbox", ["lead_id"])
    op.drop_index("ix_findings_breached", table_name="findings")
    op.drop_index("ix_leads_next_check_at_id", table_name="leads")
    op.drop_index("ix_leads_dirty_id", table_name="leads")
    with op.batch_alter_table("leads") as batch_op:
        batch_op.create_index("ix_leads_next_check_at", ["next_check_at"], unique=False)
        batch_op.create_index("ix_leads_dirty", ["dirty"], unique=False)
        batch_op.drop_column("revision")
