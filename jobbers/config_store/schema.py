"""Versioned schema migrations (Alembic, shipped inside the package as ``migrations/``).

``upgrade(conn)`` brings any database to the newest revision:
- a new (empty) database gets the newest schema at once, recorded at the newest revision;
- a database created before migrations existed (it has the queue tables but no
  ``alembic_version``) is stamped at the first revision, then upgraded;
- a database already at the newest revision is left alone without importing Alembic, so a process
  start costs one small query.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, text

from jobbers.config_store.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest revision in ``migrations/versions`` (a test checks it against Alembic's head).
HEAD_REVISION = "0004"
#: The revision that describes the tables of versions before migrations.
BASELINE_REVISION = "0001"

MIGRATIONS = Path(__file__).with_name("migrations")

log = logging.getLogger("jobbers.config_store")


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the database, or None when it has no ``alembic_version``."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(conn: Connection, target: str = "head") -> None:
    """Migrate the database on ``conn`` to ``target`` (see the module docstring)."""
    revision = current_revision(conn)
    if target == "head" and revision == HEAD_REVISION:
        return
    if target == "head" and revision is None and not inspect(conn).has_table("jobbers_queues"):
        # An empty database: create the newest schema directly and record its revision, as
        # Alembic's own stamp would (a test checks this equals running every revision).
        metadata.create_all(conn)
        version = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))
        version.create(conn)
        conn.execute(version.insert().values(version_num=HEAD_REVISION))
        log.info("SQL schema created at revision %s", HEAD_REVISION)
        return
    # Alembic logs every plugin it sets up at INFO; one line of ours says what happened.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command

    config = _config(conn)
    if revision is None and inspect(conn).has_table("jobbers_queues"):
        command.stamp(config, BASELINE_REVISION)
        revision = BASELINE_REVISION
    command.upgrade(config, target)
    log.info(
        "SQL schema migrated from revision %s to %s", revision or "(empty database)", current_revision(conn)
    )


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config
