"""SQLAlchemy tables for queue and role configuration."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

queues = Table(
    "jobbers_queues",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("max_concurrent", Integer, nullable=True),
    Column("rate_numerator", Integer, nullable=True),
    Column("rate_denominator", Integer, nullable=False, default=1),
    Column("rate_period", String(16), nullable=False, default="second"),
)

roles = Table(
    "jobbers_roles",
    metadata,
    Column("name", String(64), primary_key=True),
)

role_queues = Table(
    "jobbers_role_queues",
    metadata,
    Column("role", String(64), ForeignKey("jobbers_roles.name", ondelete="CASCADE"), primary_key=True),
    Column("queue", String(64), ForeignKey("jobbers_queues.name", ondelete="CASCADE"), primary_key=True),
    # Where the queue comes in the role's order, from 1; 0 = saved before the order was kept
    # (revision 0003): such a role has no order and its workers rotate among its queues.
    Column("position", Integer, nullable=False, server_default="0"),
)

#: Recurring entries (``/recurring``): a cron expression (with an optional IANA timezone) or
#: an interval in seconds; ``last_fire_ms`` is the latest fire time already enqueued. An entry that
#: fires a workflow run has its graph in ``workflow`` (JSON; revision 0004) and ``task_name`` "".
recurring = Table(
    "jobbers_recurring",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("task_name", String(200), nullable=False),
    Column("task_version", Integer, nullable=False),
    Column("params", Text, nullable=False),
    Column("queue", String(64), nullable=False, index=True),
    Column("priority", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("cron", String(200), nullable=True),
    Column("timezone", String(64), nullable=True),
    Column("every_seconds", Float, nullable=True),
    Column("catch_up", Boolean, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("static", Boolean, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("last_fire_ms", BigInteger, nullable=True),
    Column("workflow", Text, nullable=True),
    Column("skip_if_running", Boolean, nullable=False, server_default=false()),
)
