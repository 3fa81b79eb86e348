"""The admin overview's figures (GET /stats) and how the manager serves the admin UI (/ui)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from jobbers.manager import create_app
from jobbers.manager.admin_ui import UI_DIR
from jobbers.settings import Settings
from jobbers.state.store import NewTask, Outcome, TaskStore
from tests.manager_support import (
    api,
    claim,
    create_queue,
    fail_into_dlq,
    manager_settings,
    registered,
    running,
    submit,
)

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module


async def test_stats_counts_each_queue_and_status(api: httpx.AsyncClient, store: TaskStore) -> None:
    await create_queue(api, "reports", max_concurrent=4)
    for _ in range(3):
        await submit(api)
    await submit(api, queue="reports")
    await submit(api, queue="reports", delay=3600)
    await claim(store, "default", count=1)
    await fail_into_dlq(store, "reports")

    stats = (await api.get("/stats")).json()

    queues = {q["name"]: q for q in stats["queues"]}
    assert {k: queues["default"][k] for k in ("ready", "running", "scheduled", "dead_lettered")} == {
        "ready": 2, "running": 1, "scheduled": 0, "dead_lettered": 0,
    }  # fmt: skip
    assert {k: queues["reports"][k] for k in ("ready", "running", "scheduled", "dead_lettered")} == {
        "ready": 0, "running": 0, "scheduled": 1, "dead_lettered": 1,
    }  # fmt: skip
    assert queues["reports"]["max_concurrent"] == 4 and queues["reports"]["configured"] is True
    assert stats["statuses"] == {
        "submitted": 2, "scheduled": 1, "started": 1, "completed": 0, "failed": 1, "cancelled": 0,
        "stalled": 0, "dropped": 0,
    }  # fmt: skip
    assert stats["dead_lettered"] == 1


async def test_stats_throughput_counts_terminal_outcomes_per_minute(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    for _ in range(3):
        await submit(api)
    cancelled = await submit(api)
    await api.post(f"/task/{cancelled['id']}/cancel")
    held = await claim(store)
    retry = Outcome(held[2].id, held[2].token, "retry", error_type="E", error_message="x", retry_attempt=1)
    await store.finish([Outcome(h.id, h.token, "completed") for h in held[:2]] + [retry])

    stats = (await api.get("/stats", params={"minutes": 5})).json()

    points = stats["throughput"]
    minutes = [dt.datetime.fromisoformat(p["minute"]) for p in points]
    assert len(points) == 5 and minutes == sorted(minutes)
    assert minutes[1] - minutes[0] == dt.timedelta(minutes=1)
    # A retry is not an outcome; a cancellation of a queued task is.
    assert sum(p["counts"].get("completed", 0) for p in points) == 2
    assert sum(p["counts"].get("cancelled", 0) for p in points) == 1
    assert sum(p["total"] for p in points) == 3
    assert minutes[-1] <= dt.datetime.fromisoformat(stats["now"])  # compare times, not strings
    default = next(q for q in stats["queues"] if q["name"] == "default")
    assert default["recent"] == {"completed": 2, "cancelled": 1}


async def test_throughput_keys_expire_within_the_hour(api: httpx.AsyncClient, store: TaskStore) -> None:
    await submit(api)
    (held,) = await claim(store)
    await store.finish([Outcome(held.id, held.token, "completed")])

    keys = [k async for k in store.redis.scan_iter(match=store.keys.space("default").throughput(0).replace(":0", ":*"))]

    assert len(keys) == 1 and 0 < await store.redis.ttl(keys[0]) <= 3600


async def test_stats_lists_workers_until_their_report_expires_or_they_leave(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    info = {"role": "default", "queues": "default,reports", "running": 2, "slots": 5, "processed": 7}
    await store.report_worker("host:1:aa", 30, info)
    await store.report_worker("host:2:bb", 0.05, info)
    await store.report_worker("host:3:cc", 30, info)
    await store.forget_worker("host:3:cc")
    await asyncio.sleep(0.1)

    stats = (await api.get("/stats")).json()

    assert stats["workers_alive"] == 1
    (worker,) = stats["workers"]
    assert {k: worker[k] for k in ("id", "role", "queues", "running", "slots", "processed")} == {
        "id": "host:1:aa", "role": "default", "queues": ["default", "reports"], "running": 2, "slots": 5,
        "processed": 7,
    }  # fmt: skip
    at = dt.datetime.fromisoformat
    assert at(worker["started_at"]) <= at(worker["last_seen_at"]) <= at(stats["now"])


async def test_stats_lists_a_deleted_queue_that_still_holds_tasks(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    await store.submit(NewTask(name="add", queue="gone"))  # written directly: the API refuses unknown queues

    stats = (await api.get("/stats")).json()

    gone = next(q for q in stats["queues"] if q["name"] == "gone")
    assert gone["configured"] is False and gone["ready"] == 1 and gone["max_concurrent"] is None


async def test_stats_validates_its_window(api: httpx.AsyncClient) -> None:
    assert (await api.get("/stats", params={"minutes": 0})).status_code == 422
    assert (await api.get("/stats", params={"minutes": 61})).status_code == 422
    assert "/stats" in (await api.get("/openapi.json")).json()["paths"]


# -- the admin UI's files ------------------------------------------------------------------------


async def test_ui_is_served_with_a_strict_content_security_policy(api: httpx.AsyncClient) -> None:
    root = await api.get("/ui")
    index = await api.get("/ui/")
    script = await api.get("/ui/js/app.js")
    style = await api.get("/ui/app.css")

    assert root.status_code == 307 and root.headers["location"] == "ui/"
    assert index.status_code == 200 and 'src="js/app.js"' in index.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert (await api.get("/ui/missing.js")).status_code == 404
    assert "/ui" not in (await api.get("/openapi.json")).json()["paths"]


async def test_ui_never_writes_markup_from_script() -> None:
    """The UI builds its DOM from text nodes and attributes (``h()`` in dom.js), never from HTML strings."""
    sources = {p.name: p.read_text() for p in UI_DIR.rglob("*.js")}
    markup_sinks = re.compile(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|Fragment\(")

    assert len(sources) >= 10 and [name for name, text in sources.items() if markup_sinks.search(text)] == []


@pytest.fixture
async def secured_api(manager_settings: Settings, registered: None) -> AsyncIterator[httpx.AsyncClient]:
    settings = manager_settings.model_copy(update={"manager_api_token": SecretStr("s3cret")})
    async for client in running(create_app(settings)):
        yield client


async def test_ui_files_need_no_token_but_its_data_does(secured_api: httpx.AsyncClient) -> None:
    assert (await secured_api.get("/ui")).status_code == 307
    assert (await secured_api.get("/ui/")).status_code == 200
    assert (await secured_api.get("/ui/js/pages/tasks.js")).status_code == 200
    assert (await secured_api.get("/stats")).status_code == 401
    assert (await secured_api.get("/stats", headers={"Authorization": "Bearer s3cret"})).status_code == 200
    # Only /ui and what lies under /ui/ is open, not every path that starts with the letters.
    assert (await secured_api.get("/uix")).status_code == 401
    assert (await secured_api.get("/ui/../stats")).status_code in (401, 404)
