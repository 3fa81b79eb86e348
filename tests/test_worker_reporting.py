"""What a worker tells its operator: a warning (repeated, rate-limited) while its role gives it no
queue, and its running count in the overview as soon as it changes, not a refresh interval later."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobbers.client import JobbersClient
from jobbers.config_store import ConfigStore
from jobbers.models.role import Role
from jobbers.registry import register_task
from jobbers.settings import Settings
from jobbers.state.stats import PlatformStats
from jobbers.state.store import TaskStore
from jobbers.worker import Worker
from jobbers.worker import worker as worker_module
from tests.redis_server import RedisServer


@pytest.fixture
async def settings(redis_server: RedisServer, key_prefix: str, sqlite_url: str) -> Settings:
    return Settings(redis_url=redis_server.url, redis_key_prefix=key_prefix, sql_path=sqlite_url,
                    worker_ttl=0, worker_lease_seconds=2, worker_refresh_interval=0.05,
                    worker_shutdown_grace=2)  # fmt: skip


@pytest.fixture
async def config(settings: Settings) -> AsyncIterator[ConfigStore]:
    store = ConfigStore(settings.sql_path)
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
async def running_worker(
    settings: Settings, store: TaskStore, config: ConfigStore
) -> AsyncIterator[Any]:
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> Worker:
        worker = Worker(settings.model_copy(update=overrides), store, config)
        started.append((worker, asyncio.create_task(worker.run(handle_signals=False))))
        return worker

    yield start
    for worker, _ in started:
        worker.request_shutdown()
    await asyncio.wait_for(asyncio.gather(*(t for _, t in started), return_exceptions=True), 10)


def idle_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "consumes no queue" in r.getMessage()]


async def wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_worker_whose_role_does_not_exist_keeps_warning_until_it_does(
    running_worker: Any, config: ConfigStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "IDLE_ROLE_WARNING_SECONDS", 0.1)
    caplog.set_level(logging.INFO, logger="jobbers.worker")
    await running_worker(worker_role="ghost")

    await wait_for(lambda: len(idle_warnings(caplog)) >= 3)
    assert "role 'ghost' does not exist" in idle_warnings(caplog)[0]
    assert "PUT /roles/ghost" in idle_warnings(caplog)[0] and "WORKER_ROLE" in idle_warnings(caplog)[0]

    await config.save_role(Role(name="ghost", queues=["default"]))
    await wait_for(lambda: any("role 'ghost' now has queues" in r.getMessage() for r in caplog.records))
    count = len(idle_warnings(caplog))
    await asyncio.sleep(0.4)
    assert len(idle_warnings(caplog)) == count  # quiet once the role gives it a queue


async def test_the_warning_is_rate_limited_and_says_why_the_role_gives_nothing(
    running_worker: Any, config: ConfigStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobbers.worker")
    await config.save_role(Role(name="empty", queues=[]))
    await running_worker(worker_role="empty")

    await wait_for(lambda: idle_warnings(caplog))
    await asyncio.sleep(0.5)  # ten refreshes
    (warning,) = idle_warnings(caplog)  # once per IDLE_ROLE_WARNING_SECONDS, not per refresh
    assert "role 'empty' lists no queues" in warning


async def test_the_worker_reports_its_running_count_when_it_changes(
    running_worker: Any, store: TaskStore, config: ConfigStore
) -> None:
    release = asyncio.Event()

    @register_task(name="held")
    async def held() -> None:
        await release.wait()

    stats = PlatformStats(store)
    client = JobbersClient(store, config, queue_cache_seconds=0)
    await running_worker(worker_refresh_interval=60)  # no periodic report during the test

    async def running() -> list[int]:
        return [w.running for w in (await stats.snapshot([])).workers]

    deadline = time.monotonic() + 10
    while await running() != [0]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    for _ in range(3):
        await client.submit("held")
    while await running() != [3]:
        assert time.monotonic() < deadline, await running()
        await asyncio.sleep(0.02)
    release.set()
    while await running() != [0]:
        assert time.monotonic() < deadline, await running()
        await asyncio.sleep(0.02)
