"""Write-back (issue 14): when the Outlook edit written to the CRM was made, so another
mailbox's edit of the same field can be compared with it (the latest edit wins).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("write_backs") as batch:
        batch.add_column(sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("write_backs") as batch:
        batch.drop_column("edited_at")
