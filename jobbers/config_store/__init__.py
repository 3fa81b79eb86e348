"""Queue and role configuration in SQL (SQLite by default, PostgreSQL in production)."""

from jobbers.config_store.queue_directory import QueueDirectory, queue_not_found
from jobbers.config_store.repository import SQL_UNAVAILABLE_ERRORS, ConfigStore

__all__ = ["SQL_UNAVAILABLE_ERRORS", "ConfigStore", "QueueDirectory", "queue_not_found"]
