"""Fixtures and helpers for the manager's API tests (imported by each tests/test_manager_*.py).

The app runs in-process behind ``httpx.ASGITransport`` against a real redis-server and a real SQL
database; its lifespan (which migrates SQL) runs around each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from jobbers.manager import create_app
from jobbers.models.queue_config import QueueConfig
from jobbers.registry import register_task
from jobbers.settings import Settings
from jobbers.state.store import ClaimedTask, Outcome, TaskStore
from tests.redis_server import RedisServer


def register_test_tasks() -> None:
    """The tasks the API tests submit (the registry is cleared around every test)."""

    @register_task("add", version=1, dead_letter_policy="save", max_retries=2)
    async def add(a: int, b: int = 0) -> int:
        return a + b

    @register_task("add", version=2)
    async def add_v2(a: int, b: int, c: int = 0) -> int:
        return a + b + c

    @register_task("anything")
    async def anything(**kwargs: object) -> None:
        return None


@pytest.fixture
def registered() -> None:
    register_test_tasks()


@pytest.fixture
def manager_settings(redis_server: RedisServer, key_prefix: str, sqlite_url: str) -> Settings:
    return Settings(redis_url=redis_server.url, redis_key_prefix=key_prefix, sql_path=sqlite_url)


async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app`` with its lifespan (startup: SQL migration) entered."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://manager") as client:
            yield client


@pytest.fixture
async def api(manager_settings: Settings, registered: None) -> AsyncIterator[httpx.AsyncClient]:
    async for client in running(create_app(manager_settings)):
        yield client


async def submit(api: httpx.AsyncClient, name: str = "add", **body: Any) -> dict[str, Any]:
    """Submit one task (default: ``add(a=1)`` to ``default``) and return the response body."""
    body.setdefault("params", {"a": 1} if name == "add" else {})
    response = await api.post("/tasks", json={"name": name, **body})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def create_queue(api: httpx.AsyncClient, name: str, **limits: Any) -> None:
    response = await api.post("/queues", json={"name": name, **limits})
    assert response.status_code == 201, response.text


async def claim(store: TaskStore, queue: str = "default", count: int = 100) -> list[ClaimedTask]:
    """Claim ready tasks of ``queue`` the way a worker does (so they are ``started``)."""
    result = await store.claim("test-worker", 30.0, count, [QueueConfig(name=queue)])
    return result.tasks


async def fail_into_dlq(store: TaskStore, queue: str, message: str = "upstream timed out") -> list[str]:
    """Claim every ready task of ``queue`` and fail it into the dead letter queue (two errors each:
    one retried attempt, then the final failure)."""
    ids: list[str] = []
    for held in await claim(store, queue):
        await store.finish(
            [Outcome(held.id, held.token, "retry", error_type="ConnectionError", error_message="first", retry_attempt=1)]
        )
        ids.append(held.id)
    for held in await claim(store, queue):
        await store.finish(
            [
                Outcome(
                    held.id,
                    held.token,
                    "failed",
                    error_type="ConnectionError",
                    error_message=message,
                    dead_letter=True,
                )
            ]
        )
    return ids
