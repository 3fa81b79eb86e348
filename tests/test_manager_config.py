"""The manager's queue and role routes, against SQLite and PostgreSQL.

PostgreSQL runs at ``JOBBERS_TEST_POSTGRES_URL`` (default: trust auth on 127.0.0.1:5432); each
test gets a database of its own, dropped afterwards. Those cases are skipped only when the server
cannot be reached.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from jobbers.manager import create_app
from jobbers.settings import Settings
from tests.manager_support import registered, running, submit
from tests.redis_server import RedisServer

__all__ = ["registered"]  # fixtures used by this module

POSTGRES_URL = os.environ.get("JOBBERS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _postgres_admin() -> asyncpg.Connection:
    url = make_url(POSTGRES_URL)
    try:
        return await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, database=url.database, timeout=3
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL is unreachable at {url.render_as_string(hide_password=True)}: {exc!r}")


@pytest.fixture(params=["sqlite", "postgresql"])
async def config_url(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[str]:
    """The SQL URL of an empty config store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url
        return
    admin = await _postgres_admin()
    name = f"jobbers_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


@pytest.fixture
async def api(
    redis_server: RedisServer, key_prefix: str, config_url: str, registered: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(redis_url=redis_server.url, redis_key_prefix=key_prefix, sql_path=config_url)
    async for client in running(create_app(settings)):
        yield client


# -- queues -----------------------------------------------------------------------------------


async def test_fresh_install_has_the_default_queue(api: httpx.AsyncClient) -> None:
    response = await api.get("/queues")

    assert response.status_code == 200
    config = {"name": "default", "max_concurrent": None, "rate_numerator": None, "rate_denominator": 1, "rate_period": "second"}
    empty = {"paused": False, "ready": 0, "blocked": 0, "external": 0, "scheduled": 0, "running": 0, "latency_ms": 0}
    assert response.json() == [{**config, **empty, "completed_last_minute": 0, "failed_last_minute": 0}]


async def test_create_queue_returns_201_and_lists_it(api: httpx.AsyncClient) -> None:
    queue = {"name": "reports", "max_concurrent": 5, "rate_numerator": 100, "rate_denominator": 1, "rate_period": "hour"}

    response = await api.post("/queues", json=queue)

    assert response.status_code == 201 and response.json() == queue
    assert [q["name"] for q in (await api.get("/queues")).json()] == ["default", "reports"]
    assert (await api.get("/queues/reports/config")).json() == queue


async def test_create_existing_queue_returns_409(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})

    response = await api.post("/queues", json={"name": "reports", "max_concurrent": 1})

    assert response.status_code == 409
    assert "PUT or PATCH /queues/reports" in response.json()["detail"]
    assert (await api.get("/queues/reports/config")).json()["max_concurrent"] is None


@pytest.mark.parametrize("name", ["bad name", "-dash", "x" * 65, "", "ünïcode"])
async def test_create_queue_with_odd_name_returns_422(api: httpx.AsyncClient, name: str) -> None:
    assert (await api.post("/queues", json={"name": name})).status_code == 422


@pytest.mark.parametrize(
    "limits", [{"max_concurrent": 0}, {"rate_numerator": -1}, {"rate_period": "fortnight"}, {"rate_denominator": 0}]
)
async def test_create_queue_with_bad_limits_returns_422(api: httpx.AsyncClient, limits: dict[str, object]) -> None:
    assert (await api.post("/queues", json={"name": "reports", **limits})).status_code == 422


async def test_get_config_of_unknown_queue_returns_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/queues/nowhere/config")).status_code == 404
    assert (await api.get(f"/queues/{'x' * 65}/config")).status_code == 422


async def test_put_queue_creates_then_changes_only_the_settings_it_names(api: httpx.AsyncClient) -> None:
    created = await api.put("/queues/exports", json={"max_concurrent": 2})
    changed = await api.put("/queues/exports", json={"name": "exports", "rate_numerator": 10, "rate_period": "minute"})

    assert created.status_code == 201 and created.json()["max_concurrent"] == 2
    assert changed.status_code == 200
    assert (await api.get("/queues/exports/config")).json() == {
        "name": "exports", "max_concurrent": 2, "rate_numerator": 10, "rate_denominator": 1, "rate_period": "minute"
    }  # fmt: skip


async def test_put_queue_with_only_max_concurrent_keeps_its_rate_limit(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports", "rate_numerator": 100, "rate_period": "hour"})

    response = await api.put("/queues/reports", json={"max_concurrent": 5})

    assert response.status_code == 200
    assert (await api.get("/queues/reports/config")).json() == {
        "name": "reports", "max_concurrent": 5, "rate_numerator": 100, "rate_denominator": 1, "rate_period": "hour"
    }  # fmt: skip


async def test_put_queue_with_null_clears_that_setting_only(api: httpx.AsyncClient) -> None:
    await api.post(
        "/queues", json={"name": "reports", "max_concurrent": 3, "rate_numerator": 100, "rate_denominator": 2,
                         "rate_period": "hour"},
    )  # fmt: skip

    response = await api.put("/queues/reports", json={"rate_numerator": None, "rate_period": None})

    assert response.json() == {
        "name": "reports", "max_concurrent": 3, "rate_numerator": None, "rate_denominator": 2, "rate_period": "second"
    }  # fmt: skip


async def test_patch_queue_changes_only_the_settings_it_names(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports", "max_concurrent": 3, "rate_numerator": 100})

    response = await api.patch("/queues/reports", json={"max_concurrent": None, "rate_denominator": 10})

    assert response.status_code == 200
    assert (await api.get("/queues/reports/config")).json() == {
        "name": "reports", "max_concurrent": None, "rate_numerator": 100, "rate_denominator": 10, "rate_period": "second"
    }  # fmt: skip


async def test_patch_of_unknown_queue_returns_404_and_creates_nothing(api: httpx.AsyncClient) -> None:
    response = await api.patch("/queues/nowhere", json={"max_concurrent": 1})

    assert response.status_code == 404 and "PUT /queues/nowhere" in response.json()["detail"]
    assert (await api.get("/queues/nowhere/config")).status_code == 404


async def test_concurrent_patches_of_different_settings_both_stick(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})

    await asyncio.gather(
        api.patch("/queues/reports", json={"max_concurrent": 7}),
        api.patch("/queues/reports", json={"rate_numerator": 50}),
    )

    config = (await api.get("/queues/reports/config")).json()
    assert (config["max_concurrent"], config["rate_numerator"]) == (7, 50)


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_queue_change_with_bad_limits_returns_422_and_changes_nothing(api: httpx.AsyncClient, method: str) -> None:
    await api.post("/queues", json={"name": "reports", "max_concurrent": 3})

    response = await api.request(method.upper(), "/queues/reports", json={"max_concurrent": 0, "rate_numerator": 5})

    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "max_concurrent"]
    assert (await api.get("/queues/reports/config")).json()["max_concurrent"] == 3


async def test_put_queue_with_a_different_name_in_the_body_returns_422(api: httpx.AsyncClient) -> None:
    response = await api.put("/queues/exports", json={"name": "imports"})

    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "name"]


async def test_delete_queue_returns_204_then_404(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})

    assert (await api.delete("/queues/reports")).status_code == 204
    assert (await api.delete("/queues/reports")).status_code == 404
    assert (await api.get("/queues/reports/config")).status_code == 404


async def test_delete_queue_holding_waiting_tasks_returns_409(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})
    await submit(api, queue="reports")

    response = await api.delete("/queues/reports")

    assert response.status_code == 409 and "1 queued" in response.json()["detail"]


async def test_readme_story_create_a_queue_then_submit_to_it(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports", "max_concurrent": 5, "rate_numerator": 100, "rate_period": "hour"})

    response = await api.post("/tasks", json={"name": "add", "version": 1, "queue": "reports", "params": {"a": 42}})

    assert response.status_code == 201 and response.json()["queue"] == "reports"


async def test_submit_to_a_deleted_queue_returns_422(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})
    await api.delete("/queues/reports")

    assert (await api.post("/tasks", json={"name": "add", "queue": "reports", "params": {"a": 1}})).status_code == 422


# -- roles ------------------------------------------------------------------------------------


async def test_role_list_always_has_the_default_role(api: httpx.AsyncClient) -> None:
    assert (await api.get("/roles")).json() == [{"name": "default", "queues": []}]
    assert (await api.get("/roles/default")).json() == {"name": "default", "queues": []}


async def test_create_role_returns_201_and_lists_it(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})

    response = await api.post("/roles", json={"name": "heavy-workers", "queues": ["reports", "default"]})

    assert response.status_code == 201
    assert response.json() == {"name": "heavy-workers", "queues": ["reports", "default"]}
    assert (await api.get("/roles/heavy-workers")).json() == response.json()
    assert [r["name"] for r in (await api.get("/roles")).json()] == ["default", "heavy-workers"]


async def test_a_roles_queues_come_back_in_the_order_given_each_once(api: httpx.AsyncClient) -> None:
    for name in ("urgent", "reports"):
        await api.post("/queues", json={"name": name})

    created = await api.post("/roles", json={"name": "ops", "queues": ["urgent", "default", "urgent"]})
    replaced = await api.put("/roles/batch", json={"queues": ["reports", "urgent", "default", "reports"]})

    assert created.json()["queues"] == ["urgent", "default"]  # a repeat counts once, where it first comes
    assert replaced.json()["queues"] == ["reports", "urgent", "default"]
    assert (await api.get("/roles")).json() == [
        {"name": "batch", "queues": ["reports", "urgent", "default"]},
        {"name": "default", "queues": []},
        {"name": "ops", "queues": ["urgent", "default"]},
    ]
    assert (await api.get("/roles/ops")).json() == created.json()


async def test_create_existing_role_returns_409(api: httpx.AsyncClient) -> None:
    await api.post("/roles", json={"name": "light", "queues": ["default"]})

    response = await api.post("/roles", json={"name": "light", "queues": []})

    assert response.status_code == 409
    assert (await api.get("/roles/light")).json()["queues"] == ["default"]


async def test_create_role_with_unknown_queue_returns_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/roles", json={"name": "light", "queues": ["default", "nowhere"]})

    assert response.status_code == 422 and "nowhere" in response.json()["detail"][0]["msg"]
    assert (await api.get("/roles/light")).status_code == 404


@pytest.mark.parametrize("name", ["bad name", "-dash", "x" * 65])
async def test_role_with_odd_name_returns_422(api: httpx.AsyncClient, name: str) -> None:
    assert (await api.post("/roles", json={"name": name})).status_code == 422
    assert (await api.put(f"/roles/{name}", json={"queues": []})).status_code == 422


async def test_get_unknown_role_returns_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/roles/nobody")).status_code == 404


async def test_put_role_creates_then_replaces_its_queue_list(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})

    created = await api.put("/roles/heavy", json={"queues": ["reports"]})
    replaced = await api.put("/roles/heavy", json={"queues": ["default"]})

    assert created.status_code == 201 and replaced.status_code == 200
    assert (await api.get("/roles/heavy")).json() == {"name": "heavy", "queues": ["default"]}
    assert (await api.put("/roles/heavy", json={"queues": ["nowhere"]})).status_code == 422


async def test_delete_role_returns_204_then_404(api: httpx.AsyncClient) -> None:
    await api.post("/roles", json={"name": "light"})

    assert (await api.delete("/roles/light")).status_code == 204
    assert (await api.delete("/roles/light")).status_code == 404


async def test_delete_default_role_returns_409_saying_how_to_reset_it(api: httpx.AsyncClient) -> None:
    await api.put("/roles/default", json={"queues": ["default"]})

    response = await api.delete("/roles/default")

    assert response.status_code == 409
    assert 'PUT /roles/default {"queues": []}' in response.json()["detail"]
    assert (await api.get("/roles/default")).json() == {"name": "default", "queues": ["default"]}


async def test_put_default_role_with_no_queues_resets_it_to_every_queue(api: httpx.AsyncClient) -> None:
    await api.put("/roles/default", json={"queues": ["default"]})

    assert (await api.put("/roles/default", json={"queues": []})).status_code == 200

    assert (await api.get("/roles/default")).json() == {"name": "default", "queues": []}


async def test_deleting_a_queue_removes_it_from_roles(api: httpx.AsyncClient) -> None:
    await api.post("/queues", json={"name": "reports"})
    await api.post("/roles", json={"name": "heavy", "queues": ["reports", "default"]})

    await api.delete("/queues/reports")

    assert (await api.get("/roles/heavy")).json()["queues"] == ["default"]
