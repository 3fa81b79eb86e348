"""One task record that cannot be shown as JSON never breaks a listing, or its own status page.

The records are put straight into Redis (params nested 300 levels deep, as accepted before params
had a nesting limit), or produced the way a worker would (a task returning a result just as deep).
"""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from jobbers.state.codec import pack
from jobbers.state.store import Outcome, TaskStore
from tests.helpers import task_space
from tests.manager_support import api, claim, fail_into_dlq, manager_settings, registered, submit
from tests.test_json_values import nested

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module

TOO_DEEP = 300  # deeper than JSON serialization goes (about 255)


async def _bury_params(redis: Redis, store: TaskStore, task_id: str) -> None:
    """Overwrite a stored task's params with a value nested ``TOO_DEEP`` levels."""
    await redis.hset((await task_space(store, task_id)).task(task_id), "params", pack(nested(TOO_DEEP)))


@pytest.mark.parametrize("path", ["/tasks", "/task-list", "/tasks?status=submitted&queue=default"])
async def test_task_listings_show_every_task_when_one_has_params_too_deep_to_render(
    api: httpx.AsyncClient, redis: Redis, store: TaskStore, path: str
) -> None:
    before = await submit(api, "anything", params={"n": 1})
    buried = await submit(api, "anything", params={"n": 2})
    after = await submit(api, "anything", params={"n": 3})
    await _bury_params(redis, store, buried["id"])

    response = await api.get(path)

    assert response.status_code == 200, response.text
    tasks = {t["id"]: t for t in response.json()["tasks"]}
    assert list(tasks) == [before["id"], buried["id"], after["id"]]
    assert tasks[before["id"]]["params"] == {"n": 1} and "omitted" not in tasks[before["id"]]
    assert tasks[after["id"]]["params"] == {"n": 3}
    assert tasks[buried["id"]]["params"] == {} and tasks[buried["id"]]["status"] == "submitted"
    assert tasks[buried["id"]]["omitted"] == {"params": "nested too deep to be shown as JSON"}


async def test_task_status_of_a_task_with_params_too_deep_shows_the_rest(
    api: httpx.AsyncClient, redis: Redis, store: TaskStore
) -> None:
    buried = await submit(api, "anything")
    await _bury_params(redis, store, buried["id"])

    response = await api.get(f"/task-status/{buried['id']}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == buried["id"] and body["name"] == "anything" and body["omitted"].keys() == {"params"}


async def test_a_result_too_deep_to_render_leaves_the_listing_and_status_working(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    await submit(api, "anything")
    (held,) = await claim(store)
    await store.finish([Outcome(held.id, held.token, "completed", result=pack(nested(TOO_DEEP)))])
    fine = await submit(api, "anything")

    listing = await api.get("/tasks", params={"status": ["submitted", "completed"]})
    status = await api.get(f"/task-status/{held.id}")

    assert listing.status_code == 200 and [t["id"] for t in listing.json()["tasks"]] == [fine["id"], held.id]
    assert status.status_code == 200
    assert status.json()["status"] == "completed" and status.json()["result"] is None
    assert status.json()["omitted"] == {"result": "nested too deep to be shown as JSON"}


async def test_active_and_scheduled_listings_survive_a_task_they_cannot_render(
    api: httpx.AsyncClient, redis: Redis, store: TaskStore
) -> None:
    running = await submit(api, "anything")
    await claim(store)
    waiting = await submit(api, "anything", delay=300)
    for task_id in (running["id"], waiting["id"]):
        await _bury_params(redis, store, task_id)

    active = await api.get("/active-tasks")
    scheduled = await api.get("/scheduled-tasks")

    assert active.status_code == 200 and [t["id"] for t in active.json()["tasks"]] == [running["id"]]
    assert scheduled.status_code == 200 and [t["id"] for t in scheduled.json()["tasks"]] == [waiting["id"]]


async def test_dead_letter_queue_shows_every_entry_when_one_has_params_too_deep(
    api: httpx.AsyncClient, redis: Redis, store: TaskStore
) -> None:
    for a in (1, 2):
        await submit(api, params={"a": a})
    first, second = await fail_into_dlq(store, "default")
    await _bury_params(redis, store, first)

    response = await api.get("/dead-letter-queue")

    assert response.status_code == 200
    entries = {t["id"]: t for t in response.json()["tasks"]}
    assert list(entries) == [first, second]
    assert entries[first]["omitted"] == {"params": "nested too deep to be shown as JSON"}
    assert entries[first]["errors"] and entries[second]["params"] == {"a": 2}


async def test_a_record_that_cannot_be_decoded_is_left_out_and_the_rest_listed(
    api: httpx.AsyncClient, redis: Redis, store: TaskStore
) -> None:
    kept = await submit(api, "anything")
    damaged = await submit(api, "anything")
    await redis.hset((await task_space(store, damaged["id"])).task(damaged["id"]), mapping={"name": b"\xff\xfe", "status": "submitted"})

    response = await api.get("/tasks")

    assert response.status_code == 200
    assert [t["id"] for t in response.json()["tasks"]] == [kept["id"]] and response.json()["total"] == 2
