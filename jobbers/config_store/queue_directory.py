"""Which queues exist: the check every submitter makes before writing a task (manager and client)."""

from __future__ import annotations

import asyncio
import time

from jobbers.config_store.repository import ConfigStore
from jobbers.errors import QueueNotFoundError


def queue_not_found(name: str) -> QueueNotFoundError:
    """The error for a submit to a queue that does not exist, saying how to create it."""
    return QueueNotFoundError(f"queue {name!r} does not exist; create it first with POST /queues")


class QueueDirectory:
    """Which queues exist, cached for ``ttl`` seconds so a submit costs no SQL query.

    A name missing from the cache is looked up again at once, so a queue created a moment ago (on
    any manager) is found; a deleted queue may still be accepted for up to ``ttl`` seconds.
    Concurrent look-ups share one SQL query.
    """

    def __init__(self, config: ConfigStore, ttl: float = 2.0) -> None:
        self.config = config
        self.ttl = ttl
        self._names: frozenset[str] = frozenset()
        self._read_started = float("-inf")
        self._lock = asyncio.Lock()

    async def exists(self, name: str) -> bool:
        """Whether queue ``name`` exists (raises the SQL error when the database is unreachable)."""
        if name in self._names and time.monotonic() - self._read_started < self.ttl:
            return True
        await self.refresh()
        return name in self._names

    async def require(self, name: str) -> None:
        """Raise ``QueueNotFoundError`` unless queue ``name`` exists."""
        if not await self.exists(name):
            raise queue_not_found(name)

    async def refresh(self) -> None:
        """Re-read the queue names, unless a read that began after this call was made has finished."""
        asked = time.monotonic()
        async with self._lock:
            if self._read_started >= asked:
                return
            started = time.monotonic()
            self._names = frozenset(q.name for q in await self.config.list_queues())
            self._read_started = started

    def forget(self) -> None:
        """Drop the cache (after this process created or deleted a queue)."""
        self._read_started = float("-inf")
