"""The manager's dead letter queue routes, and the DLQ scripts under them."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from ulid import ULID

from jobbers.models.task import TaskStatus
from jobbers.state.store import Outcome, TaskStore
from tests.helpers import count_by_status, ids_by_status
from tests.manager_support import api, claim, create_queue, fail_into_dlq, manager_settings, registered, submit

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module


async def _dead_letters(api: httpx.AsyncClient, store: TaskStore, count: int, queue: str = "default") -> list[str]:
    for i in range(count):
        await submit(api, queue=queue, params={"a": i})
    return await fail_into_dlq(store, queue)


async def test_dead_letter_queue_lists_failed_tasks_with_their_errors(api: httpx.AsyncClient, store: TaskStore) -> None:
    ids = await _dead_letters(api, store, 2)

    page = (await api.get("/dead-letter-queue")).json()

    assert [t["id"] for t in page["tasks"]] == ids and page["total"] == 2 and page["next_cursor"] is None
    entry = page["tasks"][0]
    assert entry["status"] == "failed" and entry["error"] == "ConnectionError: upstream timed out"
    assert entry["retry_attempt"] == 1 and entry["dead_lettered_at"] and len(entry["errors"]) == 2


async def test_dead_letter_queue_filters_by_queue_and_task_name(api: httpx.AsyncClient, store: TaskStore) -> None:
    await create_queue(api, "reports")
    in_default = await _dead_letters(api, store, 1)
    in_reports = await _dead_letters(api, store, 2, queue="reports")

    reports = (await api.get("/dead-letter-queue", params={"queue": "reports"})).json()
    by_name = (await api.get("/dead-letter-queue", params={"task_name": "add", "limit": 1})).json()
    nothing = (await api.get("/dead-letter-queue", params={"task_name": "anything"})).json()

    # total counts the whole DLQ: filters narrow the page, not the count.
    assert [t["id"] for t in reports["tasks"]] == in_reports and reports["total"] == 3
    assert [t["id"] for t in by_name["tasks"]] == in_default and by_name["next_cursor"]
    assert nothing["tasks"] == [] and nothing["next_cursor"] is None


async def test_dead_letter_history_lists_every_attempt(api: httpx.AsyncClient, store: TaskStore) -> None:
    (task_id,) = await _dead_letters(api, store, 1)

    response = await api.get(f"/dead-letter-queue/{task_id}/history")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == task_id and body["name"] == "add" and body["status"] == "failed"
    assert [(h["attempt"], h["exception_type"], h["message"]) for h in body["history"]] == [
        (0, "ConnectionError", "first"),
        (1, "ConnectionError", "upstream timed out"),
    ]
    first, second = (dt.datetime.fromisoformat(h["at"]) for h in body["history"])
    assert first <= second  # as times: as strings "...:25Z" sorts after "...:25.005000Z"


async def test_history_of_task_not_in_the_dlq_returns_404(api: httpx.AsyncClient) -> None:
    queued = await submit(api)

    assert (await api.get(f"/dead-letter-queue/{queued['id']}/history")).status_code == 404
    assert (await api.get(f"/dead-letter-queue/{ULID()}/history")).status_code == 404
    assert (await api.get("/dead-letter-queue/bogus/history")).status_code == 422


async def test_resubmit_by_ids_requeues_tasks_and_resets_retry_count(api: httpx.AsyncClient, store: TaskStore) -> None:
    ids = await _dead_letters(api, store, 2)

    response = await api.post(
        "/dead-letter-queue/resubmit", json={"task_ids": [ids[0].lower()], "reset_retry_count": True}
    )

    assert response.status_code == 200
    assert response.json() == {
        "resubmitted": 1,
        "results": [{"id": ids[0], "outcome": "resubmitted", "status": "submitted"}],
    }
    task = (await api.get(f"/task-status/{ids[0]}")).json()
    assert task["status"] == "submitted" and task["retry_attempt"] == 0 and task["dead_lettered"] is False
    assert task["completed_at"] is None and len(task["errors"]) == 2
    assert [t["id"] for t in (await api.get("/dead-letter-queue")).json()["tasks"]] == [ids[1]]
    (held,) = await claim(store)
    assert held.id == ids[0]


async def test_resubmit_keeps_retry_count_unless_asked(api: httpx.AsyncClient, store: TaskStore) -> None:
    (task_id,) = await _dead_letters(api, store, 1)

    await api.post("/dead-letter-queue/resubmit", json={"task_ids": [task_id]})

    assert (await api.get(f"/task-status/{task_id}")).json()["retry_attempt"] == 1


async def test_resubmit_by_filter_takes_the_oldest_up_to_limit(api: httpx.AsyncClient, store: TaskStore) -> None:
    await create_queue(api, "reports")
    ids = await _dead_letters(api, store, 3, queue="reports")
    await _dead_letters(api, store, 1)

    response = await api.post(
        "/dead-letter-queue/resubmit", json={"queue": "reports", "task_name": "add", "reset_retry_count": True, "limit": 2}
    )

    assert response.json()["resubmitted"] == 2
    assert [r["id"] for r in response.json()["results"]] == ids[:2]
    remaining = (await api.get("/dead-letter-queue")).json()
    assert len(remaining["tasks"]) == 2 and ids[2] in {t["id"] for t in remaining["tasks"]}


async def test_resubmit_of_task_not_in_the_dlq_reports_not_found(api: httpx.AsyncClient) -> None:
    queued = await submit(api)
    unknown = str(ULID())

    response = await api.post("/dead-letter-queue/resubmit", json={"task_ids": [queued["id"], unknown]})

    assert response.status_code == 200
    assert response.json() == {
        "resubmitted": 0,
        "results": [
            {"id": queued["id"], "outcome": "not_found", "status": "submitted"},
            {"id": unknown, "outcome": "not_found", "status": None},
        ],
    }
    assert (await api.get(f"/task-status/{queued['id']}")).json()["status"] == "submitted"


async def test_resubmit_into_a_deleted_queue_leaves_the_task_in_the_dlq(api: httpx.AsyncClient, store: TaskStore) -> None:
    await create_queue(api, "reports")
    (task_id,) = await _dead_letters(api, store, 1, queue="reports")
    assert (await api.delete("/queues/reports")).status_code == 204

    response = await api.post("/dead-letter-queue/resubmit", json={"task_ids": [task_id]})

    assert response.json()["results"] == [{"id": task_id, "outcome": "queue_not_found", "status": "failed"}]
    assert (await api.get(f"/dead-letter-queue/{task_id}/history")).status_code == 200


@pytest.mark.parametrize("body", [{"task_ids": ["nope"]}, {"limit": 0}, {"queue": "a b"}, {"reset_retry_count": "maybe"}])
async def test_resubmit_with_bad_body_returns_422(api: httpx.AsyncClient, body: dict[str, object]) -> None:
    assert (await api.post("/dead-letter-queue/resubmit", json=body)).status_code == 422


async def test_dlq_resubmit_script_refuses_a_task_that_is_not_failed_or_stalled(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    # A DLQ entry whose task is somehow still queued must not be queued a second time.
    queued = await submit(api)
    await store.redis.zadd(store.keys.space("default").dlq, {queued["id"]: 1})

    (outcome,) = await store.resubmit_dead_letters([queued["id"]], reset_retry_count=False)

    assert (outcome.outcome, outcome.status) == ("conflict", "submitted")
    assert await store.queue_depth("default") == 1


async def test_dlq_resubmit_script_requeues_a_stalled_task(api: httpx.AsyncClient, store: TaskStore) -> None:
    await submit(api)
    (held,) = await claim(store)
    await store.finish([Outcome(held.id, held.token, "stalled", dead_letter=True)])

    (outcome,) = await store.resubmit_dead_letters([held.id], reset_retry_count=False)

    assert outcome.outcome == "resubmitted"
    assert await count_by_status(store, TaskStatus.STALLED) == 0
    assert await ids_by_status(store, TaskStatus.SUBMITTED) == [held.id]


async def test_delete_dead_letters_by_ids_keeps_the_task_record(api: httpx.AsyncClient, store: TaskStore) -> None:
    ids = await _dead_letters(api, store, 2)

    response = await api.delete("/dead-letter-queue", params={"task_ids": [ids[0], str(ULID())]})

    assert response.status_code == 200 and response.json() == {"removed": 1, "task_ids": [ids[0]]}
    assert [t["id"] for t in (await api.get("/dead-letter-queue")).json()["tasks"]] == [ids[1]]
    task = (await api.get(f"/task-status/{ids[0]}")).json()
    assert task["status"] == "failed" and task["dead_lettered"] is False


async def test_delete_dead_letters_by_filter(api: httpx.AsyncClient, store: TaskStore) -> None:
    await create_queue(api, "reports")
    await _dead_letters(api, store, 2, queue="reports")
    kept = await _dead_letters(api, store, 1)

    response = await api.delete("/dead-letter-queue", params={"queue": "reports"})

    assert response.json()["removed"] == 2
    assert [t["id"] for t in (await api.get("/dead-letter-queue")).json()["tasks"]] == kept


@pytest.mark.parametrize("params", [{"task_ids": "bad"}, {"limit": 0}, {"queue": "-x"}])
async def test_delete_dead_letters_with_bad_query_returns_422(api: httpx.AsyncClient, params: dict[str, object]) -> None:
    assert (await api.delete("/dead-letter-queue", params=params)).status_code == 422
