"""The manager: the REST API over the task state (Redis) and the queue/role config (SQL)."""

from jobbers.manager.app import create_app

__all__ = ["create_app"]
