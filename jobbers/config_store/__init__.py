"""Queue and role configuration in SQL (SQLite by default, PostgreSQL in production)."""

from jobbers.config_store.repository import ConfigStore

__all__ = ["ConfigStore"]
