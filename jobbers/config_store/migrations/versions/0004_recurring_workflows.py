"""Recurring entries that fire a workflow run: its graph (``workflow``, JSON) and ``skip_if_running``.

Entries written before this revision fire a task, as they did: no workflow, and
``skip_if_running`` false.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite changes a table by copying it.
    with op.batch_alter_table("jobbers_recurring") as batch:
        batch.add_column(sa.Column("workflow", sa.Text, nullable=True))
        batch.add_column(sa.Column("skip_if_running", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("jobbers_recurring") as batch:
        batch.drop_column("skip_if_running")
        batch.drop_column("workflow")
