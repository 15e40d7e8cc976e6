"""One state row per mailbox: two CRM users never sync into the same mailbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ux_users_mailbox", "users", ["mailbox"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_users_mailbox", table_name="users")
