"""Fixtures and helpers for tests that run real jobbers processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from pathlib import Path


from jobbers.client import JobbersClient
from jobbers.config_store import ConfigStore
from jobbers.models.task import Task, TaskStatus
from jobbers.state.connection import connect
from jobbers.state.store import TaskStore
from tests.processes import Platform, platform
from tests.redis_server import RedisServer


@dataclass
class E2E:
    platform: Platform
    store: TaskStore
    client: JobbersClient
    config: ConfigStore

    async def wait_for(self, task_ids: list[str], predicate: Callable[[Task], bool], seconds: float = 20) -> list[Task]:
        deadline = time.monotonic() + seconds
        while True:
            tasks = await self.store.get_tasks(task_ids)
            if len(tasks) == len(task_ids) and all(predicate(t) for t in tasks):
                return tasks
            if time.monotonic() > deadline:
                pending = {t.id: t.status.value for t in tasks if not predicate(t)}
                raise AssertionError(f"timed out; {len(pending)} tasks not there yet: {list(pending.items())[:5]}")
            await asyncio.sleep(0.05)

    async def wait_terminal(self, task_ids: list[str], seconds: float = 20) -> list[Task]:
        return await self.wait_for(task_ids, lambda t: t.status.is_terminal, seconds)

    async def wait_started(self, task_ids: list[str], seconds: float = 20) -> list[Task]:
        return await self.wait_for(task_ids, lambda t: t.status is TaskStatus.STARTED, seconds)


async def wait_until(condition: Callable[[], Awaitable[bool] | bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


class HasUrl(Protocol):
    @property
    def url(self) -> str: ...


async def make_e2e(server: RedisServer | HasUrl, key_prefix: str, tmp_path: Path) -> AsyncIterator[E2E]:
    """Processes, a store and a client on ``server`` (one Redis, or a topology's REDIS_URL)."""
    sql_path = f"sqlite+aiosqlite:///{tmp_path / 'jobbers.db'}"
    config = ConfigStore(sql_path)
    await config.migrate()
    redis = connect(server.url)
    store = TaskStore(redis, key_prefix)
    with platform(server.url, key_prefix, sql_path, tmp_path) as p:
        yield E2E(p, store, JobbersClient(store, config), config)
    await redis.aclose()
    await config.close()
