"""SQLAlchemy tables for queue and role configuration."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table

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
)
