"""The manager's task routes: submit, bulk submit, status, cancel, task types."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from ulid import ULID

from jobbers.models.task import TaskStatus
from jobbers.state.codec import pack
from jobbers.state.store import Outcome, TaskStore
from tests.helpers import count_by_status
from tests.manager_support import api, claim, create_queue, manager_settings, registered, submit

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module


def _ulid() -> str:
    return str(ULID())


# -- submit -----------------------------------------------------------------------------------


async def test_submit_task_returns_201_with_the_readme_fields(api: httpx.AsyncClient) -> None:
    response = await api.post("/tasks", json={"name": "add", "version": 1, "queue": "default", "params": {"a": 2}})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "status", "queue", "submitted_at", "cancel_reason"}
    assert body["name"] == "add" and body["queue"] == "default" and body["status"] == "submitted"
    assert body["submitted_at"].endswith("Z")
    ULID.from_str(body["id"])


async def test_submit_defaults_to_version_1_and_queue_default(api: httpx.AsyncClient) -> None:
    body = await submit(api, params={"a": 1})

    task = (await api.get(f"/task-status/{body['id']}")).json()
    assert task["version"] == 1 and task["queue"] == "default" and task["params"] == {"a": 1}


async def test_submit_with_client_chosen_id_uses_it_upper_cased(api: httpx.AsyncClient) -> None:
    chosen = _ulid()

    body = await submit(api, id=chosen.lower())

    assert body["id"] == chosen
    assert (await api.get(f"/task-status/{chosen.lower()}")).json()["id"] == chosen


async def test_resubmitting_a_client_chosen_id_returns_the_existing_task_with_200(api: httpx.AsyncClient) -> None:
    chosen = _ulid()
    first = await submit(api, id=chosen)

    again = await api.post("/tasks", json={"name": "add", "params": {"a": 5}, "id": chosen})

    assert again.status_code == 200
    assert again.json() == first
    assert (await api.get(f"/task-status/{chosen}")).json()["params"] == {"a": 1}


async def test_idempotency_key_returns_the_same_task_for_a_retried_request(api: httpx.AsyncClient) -> None:
    request = {"name": "add", "params": {"a": 1}}
    first = await api.post("/tasks", json=request, headers={"Idempotency-Key": "order-42"})

    retried = await api.post("/tasks", json=request, headers={"Idempotency-Key": "order-42"})
    other = await api.post("/tasks", json=request, headers={"Idempotency-Key": "order-43"})

    assert first.status_code == 201 and retried.status_code == 200
    assert retried.json() == first.json()
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


async def test_idempotency_key_reused_for_a_different_request_returns_409_and_writes_nothing(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    first = await api.post("/tasks", json={"name": "add", "params": {"a": 1}}, headers={"Idempotency-Key": "order-9"})

    for changed in (
        {"name": "add", "params": {"a": 2}},
        {"name": "add", "version": 2, "params": {"a": 1, "b": 2}},
        {"name": "add", "params": {"a": 1}, "delay": 60},
        {"name": "anything", "params": {"a": 1}},
    ):
        reused = await api.post("/tasks", json=changed, headers={"Idempotency-Key": "order-9"})
        assert reused.status_code == 409, (changed, reused.text)
        assert "different request" in reused.json()["detail"]

    assert first.status_code == 201
    assert await store.queue_depth("default") == 1 and await count_by_status(store, TaskStatus.SCHEDULED) == 0
    retried = await api.post("/tasks", json={"name": "add", "params": {"a": 1}}, headers={"Idempotency-Key": "order-9"})
    assert retried.status_code == 200 and retried.json() == first.json()


async def test_idempotency_key_matches_a_retry_whatever_its_params_key_order_and_delay(
    api: httpx.AsyncClient,
) -> None:
    request = {"name": "add", "params": {"a": 1, "b": 2}, "delay": 30}
    first = await api.post("/tasks", json=request, headers={"Idempotency-Key": "later-1"})

    retried = await api.post(
        "/tasks", json={"delay": 30, "params": {"b": 2, "a": 1}, "name": "add"}, headers={"Idempotency-Key": "later-1"}
    )

    assert first.status_code == 201 and first.json()["status"] == "scheduled"
    assert retried.status_code == 200 and retried.json() == first.json()


async def test_submit_with_delay_schedules_the_task(api: httpx.AsyncClient) -> None:
    body = await submit(api, delay=120)

    task = (await api.get(f"/task-status/{body['id']}")).json()
    assert body["status"] == "scheduled" and task["status"] == "scheduled"
    run_at = dt.datetime.fromisoformat(task["run_at"])
    assert dt.timedelta(seconds=100) < run_at - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=121)


async def test_submit_with_run_at_schedules_the_task_at_that_time(api: httpx.AsyncClient) -> None:
    run_at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)

    body = await submit(api, run_at=run_at.isoformat())

    task = (await api.get(f"/task-status/{body['id']}")).json()
    assert task["status"] == "scheduled"
    assert dt.datetime.fromisoformat(task["run_at"]) == run_at


async def test_submit_with_run_at_in_the_past_queues_the_task_now(api: httpx.AsyncClient) -> None:
    body = await submit(api, run_at="2020-01-01T00:00:00")

    assert body["status"] == "submitted"


@pytest.mark.parametrize(
    "schedule",
    [
        {"delay": -1},
        {"delay": 10 * 365 * 86400},
        {"delay": "soon"},
        {"run_at": "3000-01-01T00:00:00Z"},
        {"run_at": "not a date"},
        {"run_at": "2030-01-01T00:00:00Z", "delay": 5},
    ],
)
async def test_submit_with_absurd_schedule_returns_422(api: httpx.AsyncClient, schedule: dict[str, object]) -> None:
    response = await api.post("/tasks", json={"name": "add", "params": {"a": 1}, **schedule})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


async def test_submit_of_unknown_task_name_returns_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/tasks", json={"name": "no_such_task", "params": {}})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "name"] and error["type"] == "unknown_task"
    assert "no_such_task" in error["msg"]


async def test_submit_of_unknown_task_version_returns_422_listing_known_versions(api: httpx.AsyncClient) -> None:
    response = await api.post("/tasks", json={"name": "add", "version": 7, "params": {"a": 1}})

    assert response.status_code == 422
    assert "registered versions: [1, 2]" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("params", [{}, {"a": 1, "z": 2}, {"b": 1}])
async def test_submit_with_params_not_fitting_the_signature_returns_422(
    api: httpx.AsyncClient, params: dict[str, int]
) -> None:
    response = await api.post("/tasks", json={"name": "add", "params": params})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "params"] and error["type"] == "invalid_params"


async def test_submit_with_params_not_an_object_returns_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/tasks", json={"name": "add", "params": [1, 2]})

    assert response.status_code == 422


async def test_submit_task_taking_kwargs_accepts_any_params(api: httpx.AsyncClient) -> None:
    body = await submit(api, "anything", params={"report_id": 42, "nested": {"x": [1, 2]}})

    assert (await api.get(f"/task-status/{body['id']}")).json()["params"] == {"report_id": 42, "nested": {"x": [1, 2]}}


@pytest.mark.parametrize("task_id", ["not-a-ulid", "8" + "0" * 25, "0" * 27, "01JBKR2E5F3G4H5J6K7L8M9N0U"])
async def test_submit_with_malformed_client_id_returns_422(api: httpx.AsyncClient, task_id: str) -> None:
    response = await api.post("/tasks", json={"name": "add", "params": {"a": 1}, "id": task_id})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "id"]


async def test_submit_to_a_missing_queue_returns_422_saying_how_to_create_it(api: httpx.AsyncClient) -> None:
    response = await api.post("/tasks", json={"name": "add", "queue": "reports", "params": {"a": 1}})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "queue"]
    assert "POST /queues" in error["msg"]


async def test_submit_to_a_queue_created_a_moment_ago_succeeds(api: httpx.AsyncClient) -> None:
    assert (await api.post("/tasks", json={"name": "add", "queue": "reports", "params": {"a": 1}})).status_code == 422

    await create_queue(api, "reports")
    body = await submit(api, queue="reports")

    assert body["queue"] == "reports" and body["status"] == "submitted"


@pytest.mark.parametrize("queue", ["bad name", "-leading-dash", "x" * 65, "", "quê", "a/b"])
async def test_submit_with_odd_or_over_long_queue_name_returns_422(api: httpx.AsyncClient, queue: str) -> None:
    response = await api.post("/tasks", json={"name": "add", "queue": queue, "params": {"a": 1}})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "queue"]


@pytest.mark.parametrize("body", [b"{not json", b'{"name": "add",', b"", b"[]", b'"add"'])
async def test_malformed_json_returns_422(api: httpx.AsyncClient, body: bytes) -> None:
    response = await api.post("/tasks", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422


async def test_body_over_the_limit_returns_413(api: httpx.AsyncClient) -> None:
    big = {"name": "anything", "params": {"blob": "x" * (1024 * 1024)}}

    response = await api.post("/tasks", json=big)

    assert response.status_code == 413
    assert "larger than 1048576 bytes" in response.json()["detail"]


async def test_streamed_body_over_the_limit_returns_413_without_content_length(api: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "anything", "params": {"blob": "'
        for _ in range(300):
            yield b"x" * 4096
        yield b'"}}'

    response = await api.post("/tasks", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413


async def test_body_just_under_the_limit_is_accepted(api: httpx.AsyncClient) -> None:
    body = await submit(api, "anything", params={"blob": "x" * (1024 * 1024 - 200)})

    assert body["status"] == "submitted"


# -- bulk submit ------------------------------------------------------------------------------


async def test_bulk_submit_creates_every_task_in_order(api: httpx.AsyncClient) -> None:
    tasks = [{"name": "add", "params": {"a": i}} for i in range(50)]

    response = await api.post("/tasks/bulk", json={"tasks": tasks})

    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 50 and len(body["tasks"]) == 50
    for i in (0, 49):
        task = (await api.get(f"/task-status/{body['tasks'][i]['id']}")).json()
        assert task["params"] == {"a": i} and task["status"] == "submitted"


async def test_bulk_submit_with_one_invalid_task_writes_nothing(api: httpx.AsyncClient) -> None:
    tasks = [
        {"name": "add", "params": {"a": 1}},
        {"name": "add", "params": {"nope": 1}},
        {"name": "missing", "params": {}},
        {"name": "add", "queue": "nowhere", "params": {"a": 1}},
    ]

    response = await api.post("/tasks/bulk", json={"tasks": tasks})

    assert response.status_code == 422
    locs = [e["loc"] for e in response.json()["detail"]]
    assert locs == [["body", "tasks", 1, "params"], ["body", "tasks", 2, "name"], ["body", "tasks", 3, "queue"]]
    assert (await api.get("/tasks")).json()["total"] == 0


async def test_bulk_submit_retried_with_idempotency_key_returns_the_same_tasks_with_200(
    api: httpx.AsyncClient,
) -> None:
    request = {"tasks": [{"name": "add", "params": {"a": i}} for i in range(3)]}
    first = await api.post("/tasks/bulk", json=request, headers={"Idempotency-Key": "batch-7"})

    retried = await api.post("/tasks/bulk", json=request, headers={"Idempotency-Key": "batch-7"})

    assert first.status_code == 201 and retried.status_code == 200
    assert retried.json()["tasks"] == first.json()["tasks"] and retried.json()["created"] == 0


@pytest.mark.parametrize(
    "changed",
    [
        [{"name": "add", "params": {"a": i}} for i in (0, 1, 5)],  # one item differs
        [{"name": "add", "params": {"a": i}} for i in range(4)],  # longer, same first items
        [{"name": "add", "params": {"a": i}} for i in range(2)],  # shorter
    ],
)
async def test_bulk_idempotency_key_reused_for_a_different_list_returns_409_and_writes_nothing(
    api: httpx.AsyncClient, store: TaskStore, changed: list[dict[str, object]]
) -> None:
    request = {"tasks": [{"name": "add", "params": {"a": i}} for i in range(3)]}
    first = await api.post("/tasks/bulk", json=request, headers={"Idempotency-Key": "batch-8"})

    reused = await api.post("/tasks/bulk", json={"tasks": changed}, headers={"Idempotency-Key": "batch-8"})

    assert first.status_code == 201
    assert reused.status_code == 409, reused.text
    assert "different request" in reused.json()["detail"]
    assert await store.queue_depth("default") == 3


async def test_an_idempotency_key_of_a_single_submit_is_refused_for_a_bulk_one_and_back(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    single = {"name": "add", "params": {"a": 1}}
    bulk = {"tasks": [single]}
    assert (await api.post("/tasks", json=single, headers={"Idempotency-Key": "k-1"})).status_code == 201
    assert (await api.post("/tasks/bulk", json=bulk, headers={"Idempotency-Key": "k-2"})).status_code == 201

    assert (await api.post("/tasks/bulk", json=bulk, headers={"Idempotency-Key": "k-1"})).status_code == 409
    assert (await api.post("/tasks", json=single, headers={"Idempotency-Key": "k-2"})).status_code == 409
    assert await store.queue_depth("default") == 2


@pytest.mark.parametrize("body", [{"tasks": []}, {}, {"tasks": "add"}])
async def test_bulk_submit_without_tasks_returns_422(api: httpx.AsyncClient, body: dict[str, object]) -> None:
    assert (await api.post("/tasks/bulk", json=body)).status_code == 422


# -- status -----------------------------------------------------------------------------------


async def test_task_status_returns_every_field(api: httpx.AsyncClient) -> None:
    body = await submit(api, params={"a": 3})

    task = (await api.get(f"/task-status/{body['id']}")).json()

    for field in (
        "id", "name", "version", "queue", "params", "status", "submitted_at", "run_at", "started_at",
        "last_heartbeat_at", "completed_at", "retry_attempt", "result", "error", "errors", "worker_id",
    ):  # fmt: skip
        assert field in task, field
    assert task["submitted_at"] == body["submitted_at"]


async def test_task_status_shows_result_and_completion_time(api: httpx.AsyncClient, store: TaskStore) -> None:
    body = await submit(api)
    (held,) = await claim(store)
    await store.finish([Outcome(held.id, held.token, "completed", result=pack({"url": "/reports/42.pdf"}))])

    task = (await api.get(f"/task-status/{body['id']}")).json()

    assert task["status"] == "completed" and task["result"] == {"url": "/reports/42.pdf"}
    assert task["completed_at"] and task["started_at"] and task["worker_id"] == "test-worker"


async def test_task_status_of_unknown_id_returns_404(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/task-status/{_ulid()}")

    assert response.status_code == 404
    assert "no task" in response.json()["detail"]


@pytest.mark.parametrize("task_id", ["123", "not-a-valid-ulid-at-all!!!", "Z" * 26])
async def test_task_status_of_malformed_id_returns_422(api: httpx.AsyncClient, task_id: str) -> None:
    assert (await api.get(f"/task-status/{task_id}")).status_code == 422


# -- cancel -----------------------------------------------------------------------------------


async def test_cancel_of_submitted_task_returns_200_cancelled(api: httpx.AsyncClient) -> None:
    body = await submit(api)

    response = await api.post(f"/task/{body['id']}/cancel")

    assert response.status_code == 200
    assert response.json() == {"id": body["id"], "outcome": "cancelled", "status": "cancelled"}
    assert (await api.get(f"/task-status/{body['id']}")).json()["status"] == "cancelled"


async def test_cancel_of_scheduled_task_cancels_it_at_once(api: httpx.AsyncClient) -> None:
    body = await submit(api, delay=60)

    response = await api.post(f"/task/{body['id']}/cancel")

    assert response.json()["status"] == "cancelled"
    assert (await api.get("/scheduled-tasks")).json()["tasks"] == []


async def test_cancel_of_started_task_returns_200_requested(api: httpx.AsyncClient, store: TaskStore) -> None:
    body = await submit(api)
    await claim(store)

    response = await api.post(f"/task/{body['id']}/cancel")

    assert response.status_code == 200
    assert response.json() == {"id": body["id"], "outcome": "requested", "status": "started"}
    assert (await api.get(f"/task-status/{body['id']}")).json()["cancel_requested"] is True


async def test_cancel_of_completed_task_returns_409(api: httpx.AsyncClient, store: TaskStore) -> None:
    body = await submit(api)
    (held,) = await claim(store)
    await store.finish([Outcome(held.id, held.token, "completed")])

    response = await api.post(f"/task/{body['id']}/cancel")

    assert response.status_code == 409
    assert "completed" in response.json()["detail"]


async def test_cancel_of_unknown_task_returns_404(api: httpx.AsyncClient) -> None:
    assert (await api.post(f"/task/{_ulid()}/cancel")).status_code == 404


async def test_cancel_of_malformed_id_returns_422(api: httpx.AsyncClient) -> None:
    assert (await api.post("/task/abc/cancel")).status_code == 422


async def test_bulk_cancel_reports_each_outcome(api: httpx.AsyncClient, store: TaskStore) -> None:
    running = await submit(api)
    await claim(store)
    queued = await submit(api)
    done = await submit(api, id=_ulid())
    await api.post(f"/task/{done['id']}/cancel")
    unknown = _ulid()

    response = await api.post("/tasks/cancel", json={"task_ids": [running["id"], queued["id"], done["id"], unknown]})

    assert response.status_code == 200
    outcomes = {r["id"]: (r["outcome"], r["status"]) for r in response.json()["results"]}
    assert outcomes == {
        running["id"]: ("requested", "started"),
        queued["id"]: ("cancelled", "cancelled"),
        done["id"]: ("conflict", "cancelled"),
        unknown: ("not_found", None),
    }


async def test_cancel_result_status_is_a_task_status_or_null_in_the_schema(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()["components"]["schemas"]["CancelResult"]

    assert schema["properties"]["status"]["anyOf"] == [{"$ref": "#/components/schemas/TaskStatus"}, {"type": "null"}]


@pytest.mark.parametrize("body", [{"task_ids": []}, {"task_ids": ["nope"]}, {}])
async def test_bulk_cancel_with_bad_ids_returns_422(api: httpx.AsyncClient, body: dict[str, object]) -> None:
    assert (await api.post("/tasks/cancel", json=body)).status_code == 422


# -- task types -------------------------------------------------------------------------------


async def test_task_types_lists_registered_tasks_with_their_params(api: httpx.AsyncClient) -> None:
    types = (await api.get("/task-types")).json()

    by_key = {(t["name"], t["version"]): t for t in types}
    assert set(by_key) == {("add", 1), ("add", 2), ("anything", 1)}
    assert by_key[("add", 1)]["params"] == ["a", "b"] and by_key[("add", 1)]["required_params"] == ["a"]
    assert by_key[("add", 1)]["dead_letter_policy"] == "save"
    assert by_key[("anything", 1)]["accepts_any_params"] is True
