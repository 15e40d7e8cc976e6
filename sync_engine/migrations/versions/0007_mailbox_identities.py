"""What a mailbox target learned about an address: Graph object id, EWS primary SMTP address.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailbox_identities",
        sa.Column("target", sa.String(512), primary_key=True),
        sa.Column("address", sa.String(255), primary_key=True),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mailbox_identities")
