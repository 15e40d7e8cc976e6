"""scheduler: next full reconcile and last digest per mailbox, shared marks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reconcile_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("summary_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "schedule_marks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("schedule_marks")
    with op.batch_alter_table("mailbox_state", schema=None) as batch_op:
        batch_op.drop_column("summary_until")
        batch_op.drop_column("reconcile_at")
