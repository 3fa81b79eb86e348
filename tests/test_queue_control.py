"""Queue control: priorities (claim order within a queue, kept through every way back to ready)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random

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


async def test_a_paused_queue_is_skipped_and_the_others_still_served(store: TaskStore) -> None:
    await store.submit_many([NewTask(name="held", queue="urgent"), NewTask(name="served", queue="default")])
    await store.pause_queue("urgent")
    queues = [QueueConfig(name="urgent"), QueueConfig(name="default")]
    assert await _claim_names(store, 5, queues) == ["served"]
    await store.resume_queue("urgent")
    assert await _claim_names(store, 5, queues) == ["held"]


async def test_an_idempotency_key_is_bound_to_the_priority_asked_for(api: httpx.AsyncClient) -> None:
    body = {"name": "add", "params": {"a": 1}, "priority": 5}
    first = await api.post("/tasks", json=body, headers={"Idempotency-Key": "k-prio"})
    again = await api.post("/tasks", json=body, headers={"Idempotency-Key": "k-prio"})
    other = await api.post("/tasks", json={**body, "priority": 6}, headers={"Idempotency-Key": "k-prio"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["id"] == first.json()["id"]


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


# -- pause, resume, clear; size and latency --------------------------------------------------


async def test_pause_resume_clear_and_stats_through_the_api(api: httpx.AsyncClient, store: TaskStore) -> None:
    for path in ("stats", "pause", "resume", "clear"):
        method = api.get if path == "stats" else api.post
        assert (await method(f"/queues/nowhere/{path}")).status_code == 404, path
    done = await submit(api)
    (held,) = (await store.claim("w", 30, 1, DEFAULT)).tasks
    await store.finish([Outcome(held.id, held.token, TaskStatus.COMPLETED)])
    paused = await api.post("/queues/default/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    waiting = [await submit(api, priority=p) for p in (0, 3)]
    later = await submit(api, delay=3600)
    await asyncio.sleep(0.02)

    assert (await store.claim("w", 30, 5, DEFAULT)).tasks == []  # paused: nothing starts
    stats = (await api.get("/queues/default/stats")).json()
    assert stats["paused"] is True and (stats["ready"], stats["scheduled"], stats["running"]) == (2, 1, 0)
    assert 20 <= stats["latency_ms"] < 5_000 and stats["completed_last_minute"] == 1
    assert stats["failed_last_minute"] == 0
    (listed,) = [q for q in (await api.get("/queues")).json() if q["name"] == "default"]
    assert listed["paused"] is True and listed["ready"] == 2 and "max_concurrent" in listed

    resumed = (await api.post("/queues/default/resume")).json()
    assert resumed["paused"] is False
    (first,) = (await store.claim("w", 30, 1, DEFAULT)).tasks
    assert first.id == waiting[1]["id"]
    cleared = await api.post("/queues/default/clear")
    assert cleared.status_code == 200 and cleared.json() == {"queue": "default", "cleared": 2}
    for task_id in (waiting[0]["id"], later["id"]):
        shown = (await api.get(f"/task-status/{task_id}")).json()
        assert shown["status"] == "cancelled" and shown["cancel_reason"] == "queue default was cleared"
    assert (await api.get(f"/task-status/{first.id}")).json()["status"] == "started"  # runs on
    assert (await api.get(f"/task-status/{done['id']}")).json()["cancel_reason"] is None
    stats = (await api.get("/queues/default/stats")).json()
    assert (stats["ready"], stats["scheduled"], stats["running"], stats["latency_ms"]) == (0, 0, 1, 0)
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {
        "/queues/{name}/pause",
        "/queues/{name}/resume",
        "/queues/{name}/clear",
        "/queues/{name}/stats",
    } <= set(paths)


async def test_a_queue_with_running_or_retrying_work_and_the_default_queue_are_not_deleted(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    assert (await api.post("/queues", json={"name": "reports"})).status_code == 201
    await submit(api, queue="reports")
    reports = [QueueConfig(name="reports")]
    (held,) = (await store.claim("w", 30, 1, reports)).tasks

    running = await api.delete("/queues/reports")
    assert running.status_code == 409 and "1 running" in running.json()["detail"]
    await store.finish([Outcome(held.id, held.token, "retry", retry_attempt=1, delay_ms=60_000)])
    retrying = await api.delete("/queues/reports")
    assert retrying.status_code == 409 and "1 scheduled" in retrying.json()["detail"]
    await api.post("/queues/reports/pause")
    assert (await api.post("/queues/reports/clear")).json()["cleared"] == 1
    assert (await api.delete("/queues/reports")).status_code == 204
    # Created again, it starts afresh: not paused.
    assert (await api.post("/queues", json={"name": "reports"})).status_code == 201
    assert (await api.get("/queues/reports/stats")).json()["paused"] is False

    default = await api.delete("/queues/default")
    assert default.status_code == 409 and "cannot be deleted" in default.json()["detail"]
    assert (await api.get("/queues/default/config")).status_code == 200


# -- concurrency keys ------------------------------------------------------------------------


def _keyed(
    name: str, key: str = "acct:1", limit: int = 1, ms: int = 60_000, conflict: str = "block"
) -> NewTask:
    return NewTask(
        name=name,
        concurrency_key=key,
        concurrency_limit=limit,
        concurrency_duration=dt.timedelta(milliseconds=ms),
        on_conflict=conflict,
    )


async def test_blocked_tasks_wait_for_a_slot_and_start_the_moment_one_frees(store: TaskStore) -> None:
    holder, second, third = (o.id for o in await store.submit_many([_keyed(n) for n in ("a", "b", "c")]))
    other = (await store.submit(_keyed("other-key", key="acct:2"))).id
    (stats,) = await store.queue_stats(["default"])
    assert (stats.depth, stats.blocked) == (2, 2)
    shown = await store.get_task(second)
    assert shown is not None and shown.waiting_for == "acct:1" and shown.concurrency_key == "acct:1"

    held = {t.id: t for t in (await store.claim("w", 30, 10, DEFAULT)).tasks}
    assert set(held) == {holder, other}  # one per key
    await store.finish([Outcome(holder, held[holder].token, TaskStatus.COMPLETED)])
    # No scheduler pass, no poll: the finish itself let the next waiter in.
    (next_up,) = (await store.claim("w", 30, 10, DEFAULT)).tasks
    assert next_up.id == second
    shown = await store.get_task(second)
    assert shown is not None and shown.waiting_for is None
    (cancelled,) = await store.cancel([third])  # a blocked task cancels at once
    assert cancelled.status == TaskStatus.CANCELLED
    (stats,) = await store.queue_stats(["default"])
    assert (stats.depth, stats.blocked, stats.running) == (0, 0, 2)


async def test_discard_cancels_a_submit_whose_key_is_at_its_limit(store: TaskStore) -> None:
    first = await store.submit(_keyed("d", limit=2, conflict="discard"))
    again = await store.submit(_keyed("d", limit=2, conflict="discard"))
    dropped = await store.submit(_keyed("d", limit=2, conflict="discard"))
    assert first.status is again.status is TaskStatus.SUBMITTED and first.cancel_reason is None
    assert dropped.status is TaskStatus.CANCELLED
    assert dropped.cancel_reason == "concurrency key acct:1 is at its limit (2)"
    shown = await store.get_task(dropped.id)
    assert shown is not None and shown.cancel_reason == dropped.cancel_reason


async def test_a_slot_lapses_after_its_duration_and_lease_recovery_frees_it(store: TaskStore) -> None:
    # A holder that never ends: its slot lapses after concurrency_duration, and the scheduler's
    # promotion pass (told when) lets the waiter in.
    await store.submit(_keyed("stuck", ms=150))
    waiter = (await store.submit(_keyed("waiter", ms=150))).id
    (stuck,) = (await store.claim("w", 30, 5, DEFAULT)).tasks
    early = await store.promote_due("default", 10)
    assert early.next_due_ms is not None and 0 < early.next_due_ms - early.now_ms <= 150
    assert (await store.claim("w", 30, 5, DEFAULT)).tasks == []
    await asyncio.sleep(0.2)
    await store.promote_due("default", 10)
    assert [t.id for t in (await store.claim("w", 30, 5, DEFAULT)).tasks] == [waiter]

    # A holder whose worker died: lease recovery frees its slot at once for the next waiter, and
    # re-queues the holder behind it.
    crashed = (await store.submit(_keyed("crashed", key="acct:9"))).id
    behind = (await store.submit(_keyed("behind", key="acct:9"))).id
    (held,) = (await store.claim("w", 0.05, 5, DEFAULT)).tasks
    assert held.id == crashed
    await asyncio.sleep(0.1)
    assert (await store.recover_expired_leases()).requeued == [crashed]
    assert [t.id for t in (await store.claim("w", 30, 5, DEFAULT)).tasks] == [behind]
    shown = await store.get_task(crashed)
    assert shown is not None and shown.waiting_for == "acct:9" and shown.status is TaskStatus.SUBMITTED
    assert stuck.id != waiter


async def test_clear_cancels_blocked_tasks_too(store: TaskStore) -> None:
    await store.submit_many([_keyed(n) for n in ("a", "b", "c")])
    assert await store.clear_queue("default", "cleared") == 3
    (stats,) = await store.queue_stats(["default"])
    assert (stats.depth, stats.blocked) == (0, 0)


def test_register_task_checks_its_concurrency_options() -> None:
    bad: list[dict[str, object]] = [
        {"concurrency_key": "acct:{a.b}"},
        {"concurrency_key": "acct:{a!r}"},
        {"concurrency_key": ""},
        {"concurrency_key": "k", "concurrency_limit": 0},
        {"concurrency_key": "k", "concurrency_duration": 0},
        {"concurrency_key": "k", "on_conflict": "drop"},
    ]
    for options in bad:
        with pytest.raises(TaskRegistrationError, match=r"concurrency|on_conflict"):
            register_task("badly_keyed", **options)  # type: ignore[arg-type]


async def test_concurrency_keys_through_the_api(api: httpx.AsyncClient) -> None:
    @register_task("sync_account", concurrency_key="account:{account_id}", on_conflict="discard")
    async def sync_account(account_id: int) -> None: ...

    @register_task("report", concurrency_key="report:{kind}", concurrency_limit=2)
    async def report(kind: str, day: str = "") -> None: ...

    missing = await api.post("/tasks", json={"name": "sync_account", "params": {}})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "params"]
    assert "account_id" in missing.json()["detail"][0]["msg"]
    too_long = await api.post("/tasks", json={"name": "sync_account", "params": {"account_id": "x" * 600}})
    assert too_long.status_code == 422 and "at most 500" in too_long.json()["detail"][0]["msg"]
    first = await submit(api, "sync_account", params={"account_id": 7})
    dropped = await submit(api, "sync_account", params={"account_id": 7})
    assert first["status"] == "submitted" and first["cancel_reason"] is None
    assert dropped["status"] == "cancelled" and "account:7" in dropped["cancel_reason"]
    shown = (await api.get(f"/task-status/{first['id']}")).json()
    assert shown["concurrency_key"] == "account:7" and shown["waiting_for"] is None

    reports = [await submit(api, "report", params={"kind": "sales"}) for _ in range(3)]
    blocked = (await api.get(f"/task-status/{reports[2]['id']}")).json()
    assert blocked["status"] == "submitted" and blocked["waiting_for"] == "report:sales"
    stats = (await api.get("/queues/default/stats")).json()
    assert (stats["ready"], stats["blocked"]) == (3, 1)
    refused = await api.delete("/queues/default")
    assert refused.status_code == 409


async def test_random_finishes_retries_and_crashes_never_break_a_keys_limit_or_lose_a_task(
    store: TaskStore,
) -> None:
    rng = random.Random(12)
    keys = {"k0": 1, "k1": 2, "k2": 3}
    ids = {}
    for i in range(60):
        key = f"k{i % 3}"
        task = _keyed(f"t{i}", key=key, limit=keys[key])
        ids[(await store.submit(dataclasses.replace(task, priority=rng.randint(-2, 2)))).id] = key
    ended: set[str] = set()
    for _ in range(400):
        await store.promote_due("default", 100)
        held = (await store.claim("w", 0.05, rng.randint(1, 8), DEFAULT)).tasks
        running = [t for t in await store.get_tasks(list(ids)) if t.status is TaskStatus.STARTED]
        for key, limit in keys.items():
            assert sum(ids[t.id] == key for t in running) <= limit, key
        outcomes = []
        for t in held:
            roll = rng.random()
            if roll < 0.5:
                outcomes.append(Outcome(t.id, t.token, TaskStatus.COMPLETED))
            elif roll < 0.7:
                outcomes.append(Outcome(t.id, t.token, "retry", retry_attempt=1))
            elif roll < 0.8:
                outcomes.append(Outcome(t.id, t.token, "retry", retry_attempt=1, delay_ms=5))
            # else: left running (its worker "crashed"): its lease expires and recovery takes it back
        await store.finish(outcomes)
        if rng.random() < 0.1:  # waiting (ready or blocked), scheduled or running: cancelled
            await store.cancel([rng.choice(list(ids))])
        if rng.random() < 0.2 or not held:
            await asyncio.sleep(0.06)
            await store.recover_expired_leases()
        ended = {t.id for t in await store.get_tasks(list(ids)) if t.status.is_terminal}
        if len(ended) == len(ids):
            break
    assert len(ended) == len(ids)
    (stats,) = await store.queue_stats(["default"])
    assert (stats.depth, stats.blocked, stats.scheduled, stats.running) == (0, 0, 0, 0)
