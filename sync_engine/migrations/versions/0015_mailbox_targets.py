"""Hybrid Exchange (issue 20): where each mailbox is served, and which target its links'
item ids belong to, so a move to Exchange Online keeps every link.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailbox_targets",
        sa.Column("address", sa.String(255), primary_key=True),
        sa.Column("placed", sa.String(16)),
        sa.Column("placed_why", sa.Text()),
        sa.Column("placed_at", sa.DateTime(timezone=True)),
        sa.Column("synced_target", sa.String(512)),
        sa.Column("synced_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("mailbox_targets")
