"""Recurring task entries: a cron expression or an interval, fired by the scheduler.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobbers_recurring",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("task_name", sa.String(200), nullable=False),
        sa.Column("task_version", sa.Integer, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("queue", sa.String(64), nullable=False, index=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("cron", sa.String(200), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("every_seconds", sa.Float, nullable=True),
        sa.Column("catch_up", sa.Boolean, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("static", sa.Boolean, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("last_fire_ms", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("jobbers_recurring")
