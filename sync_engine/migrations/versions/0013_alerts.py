"""Admin alerts (issue 22): the kind of a mailbox's last failure, and one row per problem
so each start and clear is posted once, at most once a day.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_state") as batch:
        batch.add_column(sa.Column("last_error_kind", sa.String(16), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("kind", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("open", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("start_posted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("started_posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clear_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("alerts")
    with op.batch_alter_table("mailbox_state") as batch:
        batch.drop_column("last_error_kind")
