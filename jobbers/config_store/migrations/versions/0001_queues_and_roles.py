"""Queues, roles and the queues of each role: the schema before versioned migrations.

A database created by a version without migrations already holds these tables;
``jobbers_migrate`` stamps it at this revision instead of creating them again.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobbers_queues",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("max_concurrent", sa.Integer, nullable=True),
        sa.Column("rate_numerator", sa.Integer, nullable=True),
        sa.Column("rate_denominator", sa.Integer, nullable=False, default=1),
        sa.Column("rate_period", sa.String(16), nullable=False, default="second"),
    )
    op.create_table("jobbers_roles", sa.Column("name", sa.String(64), primary_key=True))
    op.create_table(
        "jobbers_role_queues",
        sa.Column(
            "role", sa.String(64), sa.ForeignKey("jobbers_roles.name", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "queue", sa.String(64), sa.ForeignKey("jobbers_queues.name", ondelete="CASCADE"), primary_key=True
        ),
    )


def downgrade() -> None:
    op.drop_table("jobbers_role_queues")
    op.drop_table("jobbers_roles")
    op.drop_table("jobbers_queues")
