"""Chat accounts of front ends other than Slack (issue 21: Microsoft Teams): where a user
or a channel is reached, and the email an account was matched with.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("front_end", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("email", sa.String(255)),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("conversation_id", sa.String(512)),
        sa.Column("service_url", sa.String(512)),
        sa.Column("tz", sa.String(64)),
        sa.Column("checked_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ux_chat_accounts_account",
        "chat_accounts",
        ["front_end", "kind", "account_id"],
        unique=True,
    )
    op.create_index("ix_chat_accounts_user", "chat_accounts", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_chat_accounts_user", "chat_accounts")
    op.drop_index("ux_chat_accounts_account", "chat_accounts")
    op.drop_table("chat_accounts")
