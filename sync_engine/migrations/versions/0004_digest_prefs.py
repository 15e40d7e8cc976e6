"""Per-user digest settings: time, daily or weekly, snooze, off (SLACK_UX 9).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_prefs",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.String(length=5), nullable=True),
        sa.Column("frequency", sa.String(length=8), server_default="daily", nullable=False),
        sa.Column("weekday", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("snoozed_until", sa.Date(), nullable=True),
        sa.Column("off", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("digest_prefs")
