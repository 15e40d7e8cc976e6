"""Standing rules (issue 18, DESIGN rule 11): which rules each salesperson keeps on, whom
each brings, who was removed by hand, and why someone a rule let go leaves.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _user() -> sa.Column:
    return sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "standing_rules",
        _user(),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "rule_people",
        _user(),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("person_id", sa.Integer(), primary_key=True, autoincrement=False),
    )
    op.create_index("ix_rule_people_person", "rule_people", ["person_id"])
    op.create_table(
        "list_exclusions",
        _user(),
        sa.Column("person_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rule_departures",
        _user(),
        sa.Column("person_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("guarded", sa.Boolean(), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rules_watermark",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("watermark", sa.DateTime(timezone=False), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("rules_watermark")
    op.drop_table("rule_departures")
    op.drop_table("list_exclusions")
    op.drop_index("ix_rule_people_person", table_name="rule_people")
    op.drop_table("rule_people")
    op.drop_table("standing_rules")
