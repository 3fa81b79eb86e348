"""Externally completed tasks: declared with register_external_task, never claimed by a worker,
claimed over POST /tasks/claim under a fenced lease, heartbeat / complete / fail, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobbers import REQUIRED, JobbersClient, register_external_task
from jobbers.errors import TaskConflictError, TaskRegistrationError
from jobbers.manager import create_app
from jobbers.models.queue_config import QueueConfig
from jobbers.settings import Settings
from jobbers.state.store import TaskStore
from tests.manager_support import create_queue, manager_settings, register_test_tasks, running, submit

__all__ = ["manager_settings"]  # a fixture, used by name


def declare() -> None:
    register_test_tasks()
    register_external_task(
        "review_pr", version=1, params=["pr"], max_retries=1, retry_delay=0, dead_letter_policy="save"
    )
    register_external_task("triage", params={"issue": REQUIRED, "label": "bug"}, max_retries=0)


@pytest.fixture
async def api(manager_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    declare()
    async for client in running(create_app(manager_settings)):
        yield client


async def claim(api: httpx.AsyncClient, **body: Any) -> list[dict[str, Any]]:
    response = await api.post("/tasks/claim", json=body)
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


async def status_of(api: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await api.get(f"/task-status/{task_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_register_external_task_declares_params_and_refuses_a_clash() -> None:
    config = register_external_task("review_pr", params={"pr": REQUIRED, "depth": 1})
    assert config.external
    register_external_task("review_pr", params={"pr": REQUIRED, "depth": 1})  # the same again: fine
    with pytest.raises(TaskRegistrationError):
        register_external_task("review_pr", params=["other"])
    with pytest.raises(TaskRegistrationError):
        register_external_task("bad", params="pr")
    with pytest.raises(TaskRegistrationError):
        register_external_task("bad", params=["not a name"])


async def test_task_types_lists_external_types_and_submits_are_validated(api: httpx.AsyncClient) -> None:
    types = {(t["name"], t["version"]): t for t in (await api.get("/task-types")).json()}
    assert types[("review_pr", 1)]["external"] is True
    assert types[("review_pr", 1)]["required_params"] == ["pr"]
    assert types[("add", 1)]["external"] is False
    missing = await api.post("/tasks", json={"name": "review_pr", "params": {}})
    assert missing.status_code == 422
    unexpected = await api.post("/tasks", json={"name": "triage", "params": {"issue": 1, "x": 2}})
    assert unexpected.status_code == 422
    created = await submit(api, "review_pr", params={"pr": 7})
    assert (await status_of(api, created["id"]))["external"] is True


async def test_a_worker_claim_never_sees_external_tasks(api: httpx.AsyncClient, store: TaskStore) -> None:
    external = await submit(api, "review_pr", params={"pr": 1})
    normal = await submit(api, "add")
    claimed = await store.claim("w1", 30.0, 10, [QueueConfig(name="default")])
    assert [t.id for t in claimed.tasks] == [normal["id"]]
    (stats,) = await store.queue_stats(["default"])
    assert (stats.depth, stats.external) == (0, 1)
    assert (await status_of(api, external["id"]))["status"] == "submitted"


async def test_claim_hands_out_oldest_first_under_a_lease(api: httpx.AsyncClient, store: TaskStore) -> None:
    ids = [(await submit(api, "review_pr", params={"pr": i}))["id"] for i in range(3)]
    other = await submit(api, "triage", params={"issue": 1})
    first = await claim(api, names=["review_pr"], count=2, lease_seconds=60, claimer="agent-1")
    assert [t["id"] for t in first] == ids[:2]
    assert first[0]["params"] == {"pr": 0} and first[0]["token"] and first[0]["lease_seconds"] == 60
    task = await status_of(api, ids[0])
    assert task["status"] == "started" and task["worker_id"] == "agent-1"
    rest = await claim(api, count=10)  # every external type the manager knows
    assert sorted(t["id"] for t in rest) == sorted([ids[2], other["id"]])
    assert await claim(api) == []


async def test_a_paused_queue_hands_out_nothing(api: httpx.AsyncClient) -> None:
    await submit(api, "review_pr", params={"pr": 1})
    assert (await api.post("/queues/default/pause")).status_code == 200
    assert await claim(api) == []
    assert (await api.post("/queues/default/resume")).status_code == 200
    assert len(await claim(api)) == 1


async def test_complete_under_the_claims_token_stores_the_result(api: httpx.AsyncClient) -> None:
    task_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
    (held,) = await claim(api)
    beat = await api.post(f"/task/{task_id}/heartbeat", json={"token": held["token"], "lease_seconds": 120})
    assert beat.status_code == 200, beat.text
    assert beat.json() == {"id": task_id, "status": "started", "cancel_requested": False, "lease_seconds": 120}
    done = await api.post(f"/task/{task_id}/complete", json={"token": held["token"], "result": {"ok": [1]}})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed" and done.json()["result"] == {"ok": [1]}
    again = await api.post(f"/task/{task_id}/complete", json={"token": held["token"]})
    assert again.status_code == 409


async def test_a_heartbeat_reports_progress_shown_by_task_status_and_the_event_log(api: httpx.AsyncClient) -> None:
    task_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
    (held,) = await claim(api, claimer="agent-7")
    for current in (1, 2.5):
        body = {"token": held["token"], "progress": {"current": current, "total": 4, "message": "files"}}
        beat = await api.post(f"/task/{task_id}/heartbeat", json=body)
        assert beat.status_code == 200, beat.text
    shown = await status_of(api, task_id)
    assert shown["progress"] == {"current": 2.5, "total": 4, "message": "files", "attempt": 0}
    events = (await api.get(f"/tasks/{task_id}/events")).json()["events"]
    assert [(e["type"], e["detail"], e["worker_id"]) for e in events[2:]] == [("progress", "1/4 (25%) files", "agent-7")]
    for bad, field in (({"current": -1}, "current"), ({"current": 1, "total": 0}, "total"),
                       ({"current": "1"}, "current"), ({"current": 1, "message": "x" * 501}, "message"),
                       ({"current": 1, "totl": 2}, "totl")):
        refused = await api.post(f"/task/{task_id}/heartbeat", json={"token": held["token"], "progress": bad})
        assert refused.status_code == 422, refused.text
        assert ["body", "progress", field] in [e["loc"][:3] for e in refused.json()["detail"]], refused.text


async def test_late_write_with_a_stale_token_is_rejected_after_lease_recovery(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    task_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
    (first,) = await claim(api, lease_seconds=1)
    await asyncio.sleep(1.1)
    recovered = await store.recover_expired_leases()  # what the scheduler runs every second
    assert recovered.requeued == [task_id]
    task = await status_of(api, task_id)
    assert task["status"] == "submitted" and task["stall_count"] == 1
    (second,) = await claim(api)
    assert second["token"] != first["token"]
    for path, body in (("complete", {"result": 1}), ("fail", {"error": "late"}), ("heartbeat", {})):
        late = await api.post(f"/task/{task_id}/{path}", json={"token": first["token"], **body})
        assert late.status_code == 409, (path, late.text)
    done = await api.post(f"/task/{task_id}/complete", json={"token": second["token"], "result": 2})
    assert done.status_code == 200 and done.json()["result"] == 2


async def test_an_expired_lease_past_the_stall_budget_ends_stalled_in_the_dlq(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    task_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
    for _ in range(2):  # max_stalls 1: re-queued once, then stalled
        assert len(await claim(api, lease_seconds=1)) == 1
        await asyncio.sleep(1.1)
        await store.recover_expired_leases()
    task = await status_of(api, task_id)
    assert task["status"] == "stalled" and task["dead_lettered"] is True
    assert task["errors"][-1]["exception_type"] == "LeaseExpired"


async def test_retryable_fail_follows_the_retry_policy_then_the_dlq(api: httpx.AsyncClient) -> None:
    task_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
    (held,) = await claim(api)
    retried = await api.post(
        f"/task/{task_id}/fail", json={"token": held["token"], "error": "CI red", "retryable": True}
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "submitted" and retried.json()["retry_attempt"] == 1
    (again,) = await claim(api)
    assert again["retry_attempt"] == 1
    final = await api.post(
        f"/task/{task_id}/fail",
        json={"token": again["token"], "error": "still red", "error_type": "CIError", "retryable": True},
    )
    body = final.json()
    assert body["status"] == "failed" and body["dead_lettered"] is True
    assert [e["exception_type"] for e in body["errors"]] == ["ExternalTaskError", "CIError"]
    dlq = (await api.get("/dead-letter-queue")).json()
    assert [t["id"] for t in dlq["tasks"]] == [task_id]


async def test_a_submitted_external_task_is_completed_or_failed_without_a_claim(api: httpx.AsyncClient) -> None:
    done_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
    done = await api.post(f"/task/{done_id}/complete", json={"result": "looks good"})
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    failed_id = (await submit(api, "triage", params={"issue": 2}))["id"]
    failed = await api.post(f"/task/{failed_id}/fail", json={"error": "cannot reproduce", "retryable": True})
    assert failed.status_code == 200 and failed.json()["status"] == "failed"  # max_retries=0
    assert await claim(api) == []  # neither is left in the external ready set
    held_id = (await submit(api, "review_pr", params={"pr": 2}))["id"]
    await claim(api)
    assert (await api.post(f"/task/{held_id}/complete", json={})).status_code == 409  # claimed: token needed


async def test_worker_tasks_and_unknown_ids_are_refused(api: httpx.AsyncClient) -> None:
    normal = await submit(api, "add")
    assert (await api.post(f"/task/{normal['id']}/complete", json={})).status_code == 409
    assert (await api.post("/task/01JBKR2E5F3G4H5J6K7M8N9P0Q/complete", json={})).status_code == 404
    assert (await api.post("/task/not-an-id/complete", json={})).status_code == 422
    assert (await api.post("/tasks/claim", json={"names": ["add"]})).status_code == 422
    assert (await api.post("/tasks/claim", json={"names": ["nope"]})).status_code == 422
    assert (await api.post("/tasks/claim", json={"queue": "missing"})).status_code == 422


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/tasks/claim", {"count": 1, "lease": 5}, ["body", "lease"]),
        ("/tasks/claim", {"count": "1"}, ["body", "count"]),
        ("/tasks/claim", {"count": 0}, ["body", "count"]),
        ("/tasks/claim", {"count": 101}, ["body", "count"]),
        ("/tasks/claim", {"lease_seconds": 0}, ["body", "lease_seconds"]),
        ("/tasks/claim", {"claimer": "has space"}, ["body", "claimer"]),
        ("/tasks/claim", {"queue": "bad name!"}, ["body", "queue"]),
        ("heartbeat", {"token": "t", "tokn": "t"}, ["body", "tokn"]),
        ("heartbeat", {}, ["body", "token"]),
        ("complete", {"result": 1, "reslt": 2}, ["body", "reslt"]),
        ("fail", {"error": ""}, ["body", "error"]),
        ("fail", {"error": "x", "retryable": 1}, ["body", "retryable"]),
        ("fail", {"error": "x", "error_type": "not a type"}, ["body", "error_type"]),
    ],
)
async def test_bad_bodies_are_422s_naming_the_field(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], where: list[str]
) -> None:
    if not path.startswith("/"):
        task_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
        path = f"/task/{task_id}/{path}"
    response = await api.post(path, json=body)
    assert response.status_code == 422, response.text
    assert where in [e["loc"] for e in response.json()["detail"]]


async def test_a_result_nested_too_deep_is_refused(api: httpx.AsyncClient) -> None:
    task_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    response = await api.post(f"/task/{task_id}/complete", json={"result": deep})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "nested_too_deep"
    assert (await status_of(api, task_id))["status"] == "submitted"


async def test_claim_racing_a_cancel_ends_cancelled_exactly_once(api: httpx.AsyncClient) -> None:
    for _ in range(20):
        task_id = (await submit(api, "review_pr", params={"pr": 1}))["id"]
        claimed, cancelled = await asyncio.gather(
            api.post("/tasks/claim", json={}), api.post(f"/task/{task_id}/cancel")
        )
        assert cancelled.status_code == 200, cancelled.text
        held = claimed.json()["tasks"]
        if held:  # the claim won: the cancel was requested; the next heartbeat ends it
            assert cancelled.json()["outcome"] == "requested"
            beat = await api.post(f"/task/{task_id}/heartbeat", json={"token": held[0]["token"]})
            assert beat.json()["status"] == "cancelled"
            late = await api.post(f"/task/{task_id}/complete", json={"token": held[0]["token"]})
            assert late.status_code == 409
        else:
            assert cancelled.json()["outcome"] == "cancelled"
        assert (await status_of(api, task_id))["status"] == "cancelled"
    assert await claim(api) == []


async def test_clearing_a_queue_cancels_its_external_tasks(api: httpx.AsyncClient) -> None:
    await create_queue(api, "agents")
    task_id = (await submit(api, "review_pr", params={"pr": 1}, queue="agents"))["id"]
    assert (await api.get("/queues/agents/stats")).json()["external"] == 1
    assert (await api.delete("/queues/agents")).status_code == 409  # it still holds a waiting task
    cleared = await api.post("/queues/agents/clear")
    assert cleared.status_code == 200, cleared.text
    assert (await status_of(api, task_id))["status"] == "cancelled"
    assert await claim(api, queue="agents") == []
    assert (await api.delete("/queues/agents")).status_code == 204


async def test_the_python_client_drives_external_tasks(manager_settings: Settings) -> None:
    declare()
    async for api in running(create_app(manager_settings)):  # migrates SQL (queue 'default')
        client = JobbersClient.from_settings(manager_settings)
        try:
            sub = await client.submit("review_pr", {"pr": 3})
            (held,) = await client.claim_external(names=["review_pr"], lease_seconds=30, claimer="py")
            assert held.task.id == sub.id and held.task.worker_id == "py"
            beat = await client.heartbeat_external(sub.id, held.token)
            assert beat.status == "started" and beat.lease_seconds == 30
            with pytest.raises(TaskConflictError):
                await client.complete_external(sub.id, "x", token="stale")
            task = await client.complete_external(sub.id, {"merged": True}, token=held.token)
            assert task.status == "completed" and task.result == {"merged": True}
            direct = await client.submit("triage", {"issue": 9})
            failed = await client.fail_external(direct.id, "no", error_type="Nope")
            assert failed.status == "failed" and failed.error == "Nope: no"
        finally:
            await client.close()
        assert (await api.get("/healthz")).status_code == 200
