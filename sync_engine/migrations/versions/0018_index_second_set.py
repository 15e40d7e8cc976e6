"""The people index's second set of tables (issue 18): a rebuild fills the set search is
not reading and then switches `index_state.live_set`, so a killed rebuild never takes a
working index away. The same columns and indexes as migration 0008's set.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_NAMES = ("people_index_b", "index_terms_b", "index_term_keys_b", "index_postings_b")


def _key() -> sa.types.TypeEngine:
    return sa.String(320).with_variant(sa.String(320, collation="C"), "postgresql")


def _text(name: str, length: int, key: bool = False) -> sa.Column:
    return sa.Column(name, _key() if key else sa.String(length), nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "people_index_b",
        sa.Column("person_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("live", sa.Boolean, nullable=False),
        *(_text(n, 255) for n in ("first_name", "middle_name", "last_name", "company")),
        _text("email", 320),
        _text("job_title", 255),
        _text("business_phone", 64),
        _text("mobile_phone", 64),
        _text("manager", 255),
        *(_text(n, 320, key=True) for n in ("name_key", "company_key", "email_key")),
        sa.Column("words", sa.Text, nullable=False, server_default=""),
        sa.Column("term_ids", sa.Text, nullable=False, server_default=""),
        sa.Column("changed_at", sa.DateTime(timezone=False)),
    )
    op.create_index("ix_people_index_b_company", "people_index_b", ["company_key"])
    op.create_index("ix_people_index_b_email", "people_index_b", ["email_key"])
    op.create_table(
        "index_terms_b",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("word", _key(), nullable=False),
        sa.Column("people", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ux_index_terms_b_word", "index_terms_b", ["word"], unique=True)
    op.create_table(
        "index_term_keys_b",
        sa.Column("key", _key(), primary_key=True),
        sa.Column("term_id", sa.Integer, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "index_postings_b",
        sa.Column("term_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("person_id", sa.Integer, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE index_postings_b ALTER COLUMN term_id SET STATISTICS 1000")
    with op.batch_alter_table("index_state") as batch:
        batch.add_column(
            sa.Column("live_set", sa.Integer, nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    # the first set may be stale when the second was live: search reads the CRM until the
    # older code's next build
    op.get_bind().execute(
        sa.text("UPDATE index_state SET ready = :no WHERE live_set = 1"), {"no": False}
    )
    with op.batch_alter_table("index_state") as batch:
        batch.drop_column("live_set")
    op.drop_index("ix_people_index_b_email", "people_index_b")
    op.drop_index("ix_people_index_b_company", "people_index_b")
    for name in _NAMES:
        op.drop_table(name)
