"""The manager's task listings: /tasks and /task-list, /active-tasks, /scheduled-tasks."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from jobbers.state.queries import SCAN_BUDGET
from jobbers.state.store import TaskStore
from tests.manager_support import api, claim, create_queue, manager_settings, registered, submit

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module


async def test_list_tasks_filters_by_status_queue_and_task_name(api: httpx.AsyncClient, store: TaskStore) -> None:
    await create_queue(api, "reports")
    started = await submit(api)
    await claim(store)
    waiting = await submit(api, queue="reports")
    other_name = await submit(api, "anything", queue="reports")

    by_status = (await api.get("/tasks", params={"status": "started"})).json()
    by_queue = (await api.get("/tasks", params={"queue": "reports"})).json()
    by_both = (await api.get("/tasks", params={"queue": "reports", "task_name": "add"})).json()
    two_statuses = (await api.get("/tasks", params=[("status", "started"), ("status", "submitted")])).json()

    assert [t["id"] for t in by_status["tasks"]] == [started["id"]] and by_status["total"] == 1
    assert {t["id"] for t in by_queue["tasks"]} == {waiting["id"], other_name["id"]}
    # total counts the listed statuses over every queue and name: filters narrow the page only.
    assert by_queue["total"] == 3 and by_queue["next_cursor"] is None
    assert [t["id"] for t in by_both["tasks"]] == [waiting["id"]] and by_both["total"] == 3
    assert two_statuses["total"] == 3


async def test_list_tasks_pages_with_a_cursor_and_loses_nothing(api: httpx.AsyncClient, store: TaskStore) -> None:
    bulk = await api.post("/tasks/bulk", json={"tasks": [{"name": "add", "params": {"a": i}} for i in range(25)]})
    submitted = [t["id"] for t in bulk.json()["tasks"]]
    await claim(store, count=5)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/tasks", params=params)).json()
        assert page["total"] == 25 and page["limit"] == 10
        seen += [t["id"] for t in page["tasks"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3 and sorted(seen) == sorted(submitted) and len(seen) == len(set(seen))


async def test_list_tasks_with_a_filter_pages_through_every_match(api: httpx.AsyncClient) -> None:
    for i in range(10):
        await submit(api, "add" if i % 2 else "anything", params={"a": i} if i % 2 else {})

    first = (await api.get("/tasks", params={"task_name": "add", "limit": 3})).json()
    second = (await api.get("/tasks", params={"task_name": "add", "limit": 3, "cursor": first["next_cursor"]})).json()

    assert len(first["tasks"]) == 3 and len(second["tasks"]) == 2 and second["next_cursor"] is None
    assert {t["params"]["a"] for t in first["tasks"] + second["tasks"]} == {1, 3, 5, 7, 9}


async def test_filtered_listing_hands_out_a_cursor_when_its_scan_budget_is_spent(api: httpx.AsyncClient) -> None:
    filler = [{"name": "anything", "params": {}} for _ in range(SCAN_BUDGET + 100)]
    assert (await api.post("/tasks/bulk", json={"tasks": filler})).status_code == 201
    wanted = await submit(api)

    first = (await api.get("/tasks", params={"task_name": "add"})).json()
    second = (await api.get("/tasks", params={"task_name": "add", "cursor": first["next_cursor"]})).json()

    assert first["tasks"] == [] and first["next_cursor"] is not None
    assert [t["id"] for t in second["tasks"]] == [wanted["id"]] and second["next_cursor"] is None


async def test_task_list_is_the_same_listing_as_tasks(api: httpx.AsyncClient) -> None:
    await submit(api)

    assert (await api.get("/task-list")).json() == (await api.get("/tasks")).json()


async def test_list_limit_above_the_maximum_is_clamped(api: httpx.AsyncClient) -> None:
    response = await api.get("/tasks", params={"limit": 10**9})

    assert response.status_code == 200 and response.json()["limit"] == 1000


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": -5}, {"limit": "many"}, {"status": "exploded"}, {"cursor": "!!!"}, {"queue": "a b"}],
)
async def test_list_tasks_with_bad_query_returns_422(api: httpx.AsyncClient, params: dict[str, object]) -> None:
    assert (await api.get("/tasks", params=params)).status_code == 422


async def test_active_tasks_show_worker_and_running_time(api: httpx.AsyncClient, store: TaskStore) -> None:
    await create_queue(api, "reports")
    running = await submit(api)
    await submit(api, queue="reports")
    await claim(store)
    await claim(store, "reports")

    everything = (await api.get("/active-tasks")).json()
    default_only = (await api.get("/active-tasks", params={"queue": "default"})).json()

    assert everything["total"] == 2 and len(everything["tasks"]) == 2
    assert default_only["total"] == 2  # every queue's running tasks: the filter narrows the page only
    (task,) = default_only["tasks"]
    assert task["id"] == running["id"] and task["worker_id"] == "test-worker"
    assert 0 <= task["running_seconds"] < 5 and task["started_at"]


async def test_scheduled_tasks_are_ordered_by_run_time_across_queues(api: httpx.AsyncClient) -> None:
    await create_queue(api, "reports")
    later = await submit(api, delay=300)
    soonest = await submit(api, delay=100, queue="reports")
    middle = await submit(api, delay=200)
    await submit(api)  # queued, not scheduled

    page = (await api.get("/scheduled-tasks")).json()
    first = (await api.get("/scheduled-tasks", params={"limit": 2})).json()
    rest = (await api.get("/scheduled-tasks", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    reports = (await api.get("/scheduled-tasks", params={"queue": "reports"})).json()

    order = [soonest["id"], middle["id"], later["id"]]
    assert [t["id"] for t in page["tasks"]] == order and page["total"] == 3
    assert [t["id"] for t in first["tasks"] + rest["tasks"]] == order and rest["next_cursor"] is None
    assert [t["id"] for t in reports["tasks"]] == [soonest["id"]] and reports["total"] == 3
    first, second = (dt.datetime.fromisoformat(t["run_at"]) for t in page["tasks"][:2])
    assert first < second


@pytest.mark.parametrize(
    "path", ["/tasks", "/task-list", "/active-tasks", "/scheduled-tasks", "/dead-letter-queue"]
)
async def test_every_listing_total_is_an_integer_with_or_without_filters(api: httpx.AsyncClient, path: str) -> None:
    await submit(api)

    plain = (await api.get(path)).json()
    filtered = (await api.get(path, params={"queue": "default", "task_name": "nothing-by-this-name"}
                              if path not in ("/active-tasks", "/scheduled-tasks") else {"queue": "default"})).json()

    assert isinstance(plain["total"], int) and isinstance(filtered["total"], int)
    assert filtered["total"] == plain["total"]


async def test_correlation_id_is_stored_returned_and_filters_the_listing(api: httpx.AsyncClient) -> None:
    one = await submit(api, correlation_id="agent-session-1")
    bulk = await api.post(
        "/tasks/bulk",
        json={"tasks": [{"name": "add", "params": {"a": 2}, "correlation_id": "agent-session-1"},
                        {"name": "add", "params": {"a": 3}, "correlation_id": "other"},
                        {"name": "add", "params": {"a": 4}}]},
    )  # fmt: skip
    assert bulk.status_code == 201, bulk.text
    ids = [t["id"] for t in bulk.json()["tasks"]]

    listed = (await api.get("/tasks", params={"correlation_id": "agent-session-1"})).json()
    shown = (await api.get(f"/task-status/{one['id']}")).json()
    plain = (await api.get(f"/task-status/{ids[2]}")).json()

    assert [t["id"] for t in listed["tasks"]] == [one["id"], ids[0]]
    assert {t["correlation_id"] for t in listed["tasks"]} == {"agent-session-1"}
    assert shown["correlation_id"] == "agent-session-1" and plain["correlation_id"] is None


@pytest.mark.parametrize("value", ["", "x" * 257, 42])
async def test_a_correlation_id_that_is_empty_too_long_or_not_a_string_is_422(
    api: httpx.AsyncClient, value: object
) -> None:
    single = await api.post("/tasks", json={"name": "add", "params": {"a": 1}, "correlation_id": value})
    bulk = await api.post("/tasks/bulk", json={"tasks": [{"name": "add", "params": {"a": 1}, "correlation_id": value}]})
    listed = await api.get("/tasks", params={"correlation_id": value})

    assert single.status_code == 422 and single.json()["detail"][0]["loc"][-1] == "correlation_id"
    assert bulk.status_code == 422
    assert listed.status_code == (200 if isinstance(value, int) else 422)


async def test_a_correlation_id_of_256_characters_is_accepted(api: httpx.AsyncClient) -> None:
    made = await submit(api, correlation_id="c" * 256)

    assert (await api.get(f"/task-status/{made['id']}")).json()["correlation_id"] == "c" * 256


async def test_the_same_idempotency_key_with_another_correlation_id_is_409(api: httpx.AsyncClient) -> None:
    body = {"name": "add", "params": {"a": 1}, "correlation_id": "first"}
    first = await api.post("/tasks", json=body, headers={"Idempotency-Key": "k-1"})
    again = await api.post("/tasks", json=body, headers={"Idempotency-Key": "k-1"})
    other = await api.post("/tasks", json={**body, "correlation_id": "second"}, headers={"Idempotency-Key": "k-1"})

    assert first.status_code == 201 and again.status_code == 200 and other.status_code == 409
