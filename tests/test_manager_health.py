"""Health probes, Redis and SQL outages (503, then recovery), bearer-token auth, OpenAPI and CLI."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from jobbers.cli import openapi_main
from jobbers.config_store import ConfigStore
from jobbers.manager import create_app
from jobbers.settings import Settings
from tests.manager_support import api, manager_settings, register_test_tasks, registered, running, submit
from tests.redis_server import RedisServer

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module

ROOT = Path(__file__).resolve().parent.parent


async def test_healthz_answers_ok(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")

    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_is_ready_when_redis_and_sql_answer(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "redis": "ok", "sql": "ok"}


async def test_readyz_returns_503_when_sql_is_unreachable(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path, registered: None
) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    config = ConfigStore(f"sqlite+aiosqlite:///{db_dir / 'jobbers.db'}")
    settings = Settings(redis_url=redis_server.url, redis_key_prefix=key_prefix)
    async for client in running(create_app(settings, config=config)):
        await config.engine.dispose()  # close pooled connections, then take the database away
        shutil.rmtree(db_dir)

        ready = await client.get("/readyz")
        queues = await client.get("/queues")

        assert ready.status_code == 503
        assert ready.json()["redis"] == "ok" and ready.json()["sql"].startswith("error:")
        assert queues.status_code == 503
        assert queues.json()["detail"].startswith("the configuration database is unavailable")
    await config.close()
    await _aiosqlite_threads_stopped()


async def _aiosqlite_threads_stopped(timeout: float = 2.0) -> None:
    # aiosqlite stops the worker thread of a *failed* connection asynchronously; it must finish
    # while this test's event loop is still open, or the thread dies on "Event loop is closed".
    deadline = time.monotonic() + timeout
    while any("_connection_worker_thread" in t.name for t in threading.enumerate()):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)


@pytest.fixture
async def outage_api(
    fresh_redis_server: RedisServer, key_prefix: str, sqlite_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    register_test_tasks()
    settings = Settings(redis_url=fresh_redis_server.url, redis_key_prefix=key_prefix, sql_path=sqlite_url)
    async for client in running(create_app(settings)):
        yield client


async def test_redis_down_returns_503_and_the_manager_recovers_when_it_is_back(
    outage_api: httpx.AsyncClient, fresh_redis_server: RedisServer
) -> None:
    before = await submit(outage_api)
    fresh_redis_server.kill()

    submit_down = await outage_api.post("/tasks", json={"name": "add", "params": {"a": 1}})
    status_down = await outage_api.get(f"/task-status/{before['id']}")
    ready_down = await outage_api.get("/readyz")
    healthz_down = await outage_api.get("/healthz")

    assert submit_down.status_code == 503 and submit_down.json()["detail"].startswith("Redis is unavailable (ConnectionError)")
    assert submit_down.headers["retry-after"] == "1"
    assert status_down.status_code == 503
    assert ready_down.status_code == 503 and ready_down.json()["redis"].startswith("error:")
    assert ready_down.json()["sql"] == "ok"
    assert healthz_down.status_code == 200

    fresh_redis_server.start()

    assert (await outage_api.get("/readyz")).status_code == 200
    assert (await outage_api.get(f"/task-status/{before['id']}")).json()["status"] == "submitted"
    assert (await submit(outage_api))["status"] == "submitted"


async def test_redis_out_of_memory_returns_503(outage_api: httpx.AsyncClient, fresh_redis_server: RedisServer) -> None:
    admin = Redis.from_url(fresh_redis_server.url)
    await admin.config_set("maxmemory", "1")
    try:
        response = await outage_api.post("/tasks", json={"name": "add", "params": {"a": 1}})
    finally:
        await admin.config_set("maxmemory", "0")
        await admin.aclose()

    # Redis reports it as OutOfMemoryError, or as an OOM error from inside the script.
    detail = response.json()["detail"]
    assert response.status_code == 503 and ("OutOfMemoryError" in detail or "OOM" in detail), detail
    assert (await outage_api.post("/tasks", json={"name": "add", "params": {"a": 1}})).status_code == 201


# -- auth -------------------------------------------------------------------------------------


@pytest.fixture
async def secured_api(manager_settings: Settings, registered: None) -> AsyncIterator[httpx.AsyncClient]:
    settings = manager_settings.model_copy(update={"manager_api_token": SecretStr("s3cret")})
    async for client in running(create_app(settings)):
        yield client


@pytest.mark.parametrize("path", ["/tasks", "/queues", "/roles", "/dead-letter-queue", "/openapi.json", "/docs"])
async def test_routes_require_the_bearer_token_when_one_is_set(secured_api: httpx.AsyncClient, path: str) -> None:
    missing = await secured_api.get(path)
    wrong = await secured_api.get(path, headers={"Authorization": "Bearer nope"})
    right = await secured_api.get(path, headers={"Authorization": "Bearer s3cret"})

    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200


async def test_submit_without_the_token_returns_401_and_writes_nothing(secured_api: httpx.AsyncClient) -> None:
    auth = {"Authorization": "Bearer s3cret"}

    response = await secured_api.post("/tasks", json={"name": "add", "params": {"a": 1}})

    assert response.status_code == 401
    assert (await secured_api.get("/tasks", headers=auth)).json()["total"] == 0
    assert (await secured_api.post("/tasks", json={"name": "add", "params": {"a": 1}}, headers=auth)).status_code == 201


async def test_health_probes_need_no_token(secured_api: httpx.AsyncClient) -> None:
    assert (await secured_api.get("/healthz")).status_code == 200
    assert (await secured_api.get("/readyz")).status_code == 200


async def test_routes_are_open_when_no_token_is_set(api: httpx.AsyncClient) -> None:
    assert (await api.get("/queues")).status_code == 200


# -- OpenAPI and CLI --------------------------------------------------------------------------


async def test_openapi_document_lists_every_route(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()

    assert set(spec["paths"]) >= {
        "/tasks", "/tasks/bulk", "/task-status/{task_id}", "/task-list", "/active-tasks", "/scheduled-tasks",
        "/task/{task_id}/cancel", "/tasks/cancel", "/task-types", "/dead-letter-queue",
        "/dead-letter-queue/{task_id}/history", "/dead-letter-queue/resubmit", "/queues", "/queues/{name}",
        "/queues/{name}/config", "/roles", "/roles/{name}", "/healthz", "/readyz",
    }  # fmt: skip
    assert (await api.get("/docs")).status_code == 200


def test_openapi_command_writes_the_spec(tmp_path: Path) -> None:
    out = tmp_path / "api" / "openapi.json"
    out.parent.mkdir()

    assert openapi_main([str(out)]) == 0

    spec = json.loads(out.read_text())
    assert spec["info"]["title"] == "Jobbers" and "/tasks" in spec["paths"]


def test_openapi_command_defaults_to_openapi_json_in_the_working_directory(tmp_path: Path) -> None:
    code = "from jobbers.cli import openapi_main; raise SystemExit(openapi_main([]))"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, timeout=60)

    assert "paths" in json.loads((tmp_path / "openapi.json").read_text())


def test_manager_command_rejects_a_missing_task_module(tmp_path: Path) -> None:
    code = "from jobbers.cli import manager_main; raise SystemExit(manager_main(['no_such_module_xyz']))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT)}
    )

    assert result.returncode == 2 and "could not import task module" in result.stderr
