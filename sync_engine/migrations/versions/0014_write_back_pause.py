"""Safe write-back (issue 19): the pause after Sage CRM refused our REST login, and the
Email/Phone rows we created but could not link or delete (reused, never left behind).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "write_back_pause",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("credentials", sa.String(200), nullable=False),
    )
    op.create_table(
        "crm_orphan_rows",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("person_id", sa.Integer, nullable=False),
        sa.Column("link_type", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crm_orphan_rows")
    op.drop_table("write_back_pause")
