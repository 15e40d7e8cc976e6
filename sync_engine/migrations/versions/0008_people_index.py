"""The people index search reads instead of the customer's CRM (issue 13).

Plain tables and B-tree indexes only: no database extension, so the state database's
ordinary owner can run it (no CREATE privilege on the database or superuser needed).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _key() -> sa.types.TypeEngine:
    return sa.String(320).with_variant(sa.String(320, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "people_index",
        sa.Column("person_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("live", sa.Boolean, nullable=False),
        sa.Column("first_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("middle_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("last_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("company", sa.String(255), nullable=False, server_default=""),
        sa.Column("email", sa.String(320), nullable=False, server_default=""),
        sa.Column("job_title", sa.String(255), nullable=False, server_default=""),
        sa.Column("business_phone", sa.String(64), nullable=False, server_default=""),
        sa.Column("mobile_phone", sa.String(64), nullable=False, server_default=""),
        sa.Column("manager", sa.String(255), nullable=False, server_default=""),
        sa.Column("name_key", _key(), nullable=False, server_default=""),
        sa.Column("company_key", _key(), nullable=False, server_default=""),
        sa.Column("email_key", _key(), nullable=False, server_default=""),
        sa.Column("words", sa.Text, nullable=False, server_default=""),
        sa.Column("term_ids", sa.Text, nullable=False, server_default=""),
        sa.Column("changed_at", sa.DateTime(timezone=False)),
    )
    op.create_index("ix_people_index_company", "people_index", ["company_key"])
    op.create_index("ix_people_index_email", "people_index", ["email_key"])
    op.create_table(
        "index_terms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("word", _key(), nullable=False),
        sa.Column("people", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ux_index_terms_word", "index_terms", ["word"], unique=True)
    op.create_table(
        "index_term_keys",
        sa.Column("key", _key(), primary_key=True),
        sa.Column("term_id", sa.Integer, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "index_postings",
        sa.Column("term_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("person_id", sa.Integer, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        # the common words (first and last names) get statistics of their own, so the
        # planner sizes a name's postings right and merges two names' postings
        op.execute("ALTER TABLE index_postings ALTER COLUMN term_id SET STATISTICS 1000")
    op.create_table(
        "index_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ready", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("building_since", sa.DateTime(timezone=True)),
        sa.Column("built_at", sa.DateTime(timezone=True)),
        sa.Column("watermark", sa.DateTime(timezone=False)),
        sa.Column("refreshed_at", sa.DateTime(timezone=True)),
        sa.Column("swept_at", sa.DateTime(timezone=True)),
        sa.Column("people", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    for name in ("index_state", "index_postings", "index_term_keys", "index_terms"):
        op.drop_table(name)
    op.drop_index("ix_people_index_email", "people_index")
    op.drop_index("ix_people_index_company", "people_index")
    op.drop_table("people_index")
