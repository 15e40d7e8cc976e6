"""Write-back (issue 14): what both sides held after the last sync, on each link, and the
last Outlook edit written to the CRM per person and field.

Revision ID: 0011
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("crm_values", sa.Text(), nullable=True))
        batch.add_column(sa.Column("mailbox_values", sa.Text(), nullable=True))
    op.create_table(
        "write_backs",
        sa.Column("person_id", sa.Integer(), primary_key=True),
        sa.Column("field", sa.String(32), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("write_backs")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("mailbox_values")
        batch.drop_column("crm_values")
