"""Queue control: priorities (claim order within a queue, kept through every way back to ready)."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from jobbers.client import JobbersClient
from jobbers.errors import TaskRegistrationError
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.registry import register_task
from jobbers.state.store import NewTask, Outcome, TaskStore
from jobbers.state.task_schema import PRIORITY_STEP, enqueued_ms
from tests.manager_support import api, manager_settings, registered, submit

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module

DEFAULT = [QueueConfig(name="default")]


async def _claim_names(store: TaskStore, count: int, queues: list[QueueConfig] = DEFAULT) -> list[str]:
    return [t.name for t in (await store.claim("w", 30, count, queues)).tasks]


async def test_higher_priority_is_claimed_first_and_equal_priorities_stay_fifo(store: TaskStore) -> None:
    order = [("low", -3), ("a0", 0), ("hi1", 5), ("b0", 0), ("hi2", 5), ("top", 100), ("bottom", -100)]
    await store.submit_many([NewTask(name=name, priority=p) for name, p in order])
    (stats,) = await store.queue_stats(["default"])
    # The oldest ready task is "low" (submitted first), whatever order the claim takes.
    assert stats.depth == 7 and 0 <= stats.oldest_age_ms < 5_000

    claimed = (await store.claim("w", 30, 7, DEFAULT)).tasks
    assert [t.name for t in claimed] == ["top", "hi1", "hi2", "a0", "b0", "low", "bottom"]
    # The claim still hands out when each entered the queue (not its score).
    now = await store.redis_time_ms()
    assert all(0 <= now - t.queued_at_ms < 5_000 for t in claimed)
    shown = await store.get_task(claimed[0].id)
    assert shown is not None and shown.priority == 100


async def test_retries_schedules_recovery_and_resubmits_keep_their_priority(store: TaskStore) -> None:
    # Urgent tasks go back to ready each way; an unprioritised one, queued before all of them, is
    # claimed after them only if each kept its priority.
    await store.submit(NewTask(name="filler"))
    names = ("retried", "recovered", "resubmitted")
    retried, recovered, resubmitted = [
        o.id for o in await store.submit_many([NewTask(name=n, priority=9) for n in names])
    ]
    held = {t.name: t for t in (await store.claim("w", 0.05, 3, DEFAULT)).tasks}
    assert set(held) == set(names)
    await store.finish([Outcome(retried, held["retried"].token, "retry", retry_attempt=1)])
    await store.finish([Outcome(resubmitted, held["resubmitted"].token, TaskStatus.FAILED, dead_letter=True)])
    await store.resubmit_dead_letters([resubmitted], reset_retry_count=False)
    await asyncio.sleep(0.1)
    assert (await store.recover_expired_leases()).requeued == [recovered]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    soon = past + dt.timedelta(seconds=1.1)
    scheduled = (await store.submit(NewTask(name="scheduled", priority=9, run_at=soon))).id
    await asyncio.sleep(0.15)
    assert (await store.promote_due("default", 10)).promoted == 1

    claimed = await _claim_names(store, 5)
    assert claimed[-1] == "filler" and set(claimed[:4]) == {
        "retried",
        "recovered",
        "resubmitted",
        "scheduled",
    }
    assert all(t.priority == 9 for t in await store.get_tasks([retried, recovered, resubmitted, scheduled]))


async def test_the_queue_order_given_to_a_claim_wins_over_priority(store: TaskStore) -> None:
    await store.submit_many(
        [NewTask(name="bulk", queue="default", priority=100), NewTask(name="urgent", queue="urgent")]
    )
    queues = [QueueConfig(name="urgent"), QueueConfig(name="default")]
    assert await _claim_names(store, 2, queues) == ["urgent", "bulk"]


def test_ready_scores_hold_their_enqueue_time_exactly() -> None:
    now = 1_900_000_000_000
    for priority in (-100, -1, 0, 1, 100):
        score = float(now - priority * PRIORITY_STEP)
        assert score == now - priority * PRIORITY_STEP and enqueued_ms(score) == now
        assert enqueued_ms(repr(score).encode()) == now


def test_register_task_refuses_a_priority_out_of_range() -> None:
    for bad in (101, -101, True, 1.5):
        with pytest.raises(TaskRegistrationError, match="priority"):
            register_task("bad_priority", priority=bad)  # type: ignore[arg-type]


async def test_priority_through_the_api_and_the_client(api: httpx.AsyncClient, store: TaskStore) -> None:
    @register_task("urgent_by_default", priority=50)
    async def urgent_by_default() -> None: ...

    for bad in (101, -101, "5", 1.5, True):
        r = await api.post("/tasks", json={"name": "add", "params": {"a": 1}, "priority": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "priority"], (bad, r.text)
    low = await submit(api, priority=-5)
    default = await submit(api, "urgent_by_default")
    bulk = await api.post(
        "/tasks/bulk", json={"tasks": [{"name": "add", "params": {"a": 2}, "priority": 80}]}
    )
    assert bulk.status_code == 201, bulk.text
    plain = await submit(api)

    statuses = [(await api.get(f"/task-status/{t['id']}")).json() for t in (low, default, plain)]
    assert [s["priority"] for s in statuses] == [-5, 50, 0]
    listed = {
        t["id"]: t["priority"]
        for t in (await api.get("/tasks", params={"status": "submitted"})).json()["tasks"]
    }
    assert listed[bulk.json()["tasks"][0]["id"]] == 80
    assert (
        "priority"
        in (await api.get("/openapi.json")).json()["components"]["schemas"]["SubmitTask"]["properties"]
    )

    client = JobbersClient(store)
    top = await client.submit("add", {"a": 3}, priority=90)
    with pytest.raises(ValueError, match="priority"):
        client.build("add", {"a": 3}, priority=500)
    claimed = [t.id for t in (await store.claim("w", 30, 5, DEFAULT)).tasks]
    assert claimed == [top.id, bulk.json()["tasks"][0]["id"], default["id"], plain["id"], low["id"]]
