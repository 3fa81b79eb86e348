"""The order of a role's queues: a worker of the role drains them in that order.

Links written before this revision get position 0 (no order recorded): their roles keep the
fair rotation of earlier versions until they are saved again (positions count from 1).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite changes a table by copying it.
    with op.batch_alter_table("jobbers_role_queues") as batch:
        batch.add_column(sa.Column("position", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobbers_role_queues") as batch:
        batch.drop_column("position")
