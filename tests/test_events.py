"""The event log at the state layer: every transition's event written by its own script call, the
audit log across queues (window, filters, cursor), its summary and its trimming by age."""

from __future__ import annotations

import asyncio
import datetime as dt

from jobbers.models.event import EventKind
from jobbers.models.outcomes import RetryKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TERMINAL_STATUSES, TaskStatus
from jobbers.state.events import AuditQuery, EventLog
from jobbers.state.store import LeaseRenewal, NewTask, Outcome, StallConfig, TaskStore

DEFAULT = [QueueConfig(name="default")]


async def _types(log: EventLog, task_id: str) -> list[str]:
    events = await log.task_events(task_id)
    assert events is not None
    return [e.type.value for e in events]


def test_every_terminal_status_is_an_event_kind_of_its_own() -> None:
    # default_event (lua/_common.lua) names a move into a terminal status after the status.
    assert {s.value for s in TERMINAL_STATUSES} <= {k.value for k in EventKind}


async def test_a_task_run_to_completion_has_its_events_in_order_with_worker_and_attempt(
    store: TaskStore,
) -> None:
    log = EventLog(store)
    sub = await store.submit(NewTask(name="t", correlation_id="session-1"))
    (claimed,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks
    await store.finish([Outcome(claimed.id, claimed.token, TaskStatus.COMPLETED)])
    events = await log.task_events(sub.id)
    assert events is not None
    assert [e.type for e in events] == [EventKind.SUBMITTED, EventKind.STARTED, EventKind.COMPLETED]
    assert [e.worker_id for e in events] == [None, "w1", "w1"]
    assert [e.attempt for e in events] == [0, 0, 0]
    assert events[0].at <= events[1].at <= events[2].at
    task = await store.get_task(sub.id)
    assert task is not None and task.submitted_at is not None
    assert abs((events[0].at - task.submitted_at).total_seconds()) < 0.002  # Redis time, same call
    page = await log.page(AuditQuery(correlation_id="session-1"), 10, None)
    assert [(e.type, e.task_id, e.task_name, e.queue) for e in page.events] == [
        (EventKind.SUBMITTED, sub.id, "t", "default"),
        (EventKind.STARTED, sub.id, "t", "default"),
        (EventKind.COMPLETED, sub.id, "t", "default"),
    ]
    assert all(e.correlation_id == "session-1" for e in page.events) and page.next_cursor is None


async def test_a_retry_a_failure_and_a_dead_letter_resubmit_say_what_happened(store: TaskStore) -> None:
    log = EventLog(store)
    sub = await store.submit(NewTask(name="t"))
    (c1,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks
    await store.finish(
        [
            Outcome(
                c1.id, c1.token, RetryKind.RETRY, error_type="IOError", error_message="disk", retry_attempt=1
            )
        ]
    )
    (c2,) = (await store.claim("w2", 30, 1, DEFAULT)).tasks
    await store.finish(
        [
            Outcome(
                c2.id,
                c2.token,
                TaskStatus.FAILED,
                error_type="ValueError",
                error_message="bad",
                dead_letter=True,
            )
        ]
    )
    await store.resubmit_dead_letters([sub.id], reset_retry_count=False)
    events = await log.task_events(sub.id)
    assert events is not None
    assert [(e.type, e.attempt, e.worker_id) for e in events] == [
        (EventKind.SUBMITTED, 0, None),
        (EventKind.STARTED, 0, "w1"),
        (EventKind.RETRIED, 0, "w1"),  # the attempt that failed
        (EventKind.STARTED, 1, "w2"),
        (EventKind.FAILED, 1, "w2"),
        (EventKind.RESUBMITTED, 1, None),
    ]
    assert events[2].detail == "IOError: disk; retry in 0 ms"
    assert events[4].detail == "ValueError: bad"
    assert events[5].detail == "from the dead letter queue"


async def test_a_delayed_retry_is_retried_then_promoted(store: TaskStore) -> None:
    log = EventLog(store)
    sub = await store.submit(NewTask(name="t"))
    (c1,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks
    await store.finish([Outcome(c1.id, c1.token, RetryKind.RETRY, retry_attempt=1, delay_ms=20)])
    await asyncio.sleep(0.05)
    assert (await store.promote_due("default", 10)).promoted == 1
    types = await _types(log, sub.id)
    assert types == ["submitted", "started", "retried", "promoted"]
    assert (await log.task_events(sub.id) or [])[2].detail == "retry in 20 ms"


async def test_a_delayed_submit_is_scheduled(store: TaskStore) -> None:
    log = EventLog(store)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    sub = await store.submit(NewTask(name="t", run_at=later))
    assert await _types(log, sub.id) == ["scheduled"]


async def test_cancels_say_who_asked_and_a_running_task_gets_a_cancel_request(store: TaskStore) -> None:
    log = EventLog(store)
    queued = await store.submit(NewTask(name="t"))
    running = await store.submit(NewTask(name="t"))
    (claimed,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks
    assert claimed.id == queued.id
    await store.cancel([queued.id, running.id], by="tester")
    assert await _types(log, running.id) == ["submitted", "cancelled"]
    events = await log.task_events(queued.id)
    assert events is not None
    assert [(e.type, e.detail, e.worker_id) for e in events[2:]] == [
        (EventKind.CANCEL_REQUESTED, "requested by tester", "w1")
    ]
    assert (await log.task_events(running.id) or [])[-1].detail == "requested by tester"


async def test_a_dead_workers_task_is_recovered_then_stalled(store: TaskStore) -> None:
    log = EventLog(store)
    await store.publish_task_types([("t", 1, StallConfig(0.0, max_stalls=1, dead_letter=False))], ["default"])
    sub = await store.submit(NewTask(name="t"))
    for _ in range(2):
        (claimed,) = (await store.claim("w1", 0.01, 1, DEFAULT)).tasks
        await asyncio.sleep(0.03)
        await store.recover_expired_leases()
    events = await log.task_events(sub.id)
    assert events is not None
    assert [e.type.value for e in events] == ["submitted", "started", "recovered", "started", "stalled"]
    assert events[2].worker_id == "w1" and events[2].detail is not None and "re-queued" in events[2].detail
    assert events[4].detail is not None and "stall budget spent" in events[4].detail
    assert claimed.id == sub.id


async def test_a_silent_heartbeat_is_heartbeat_stale(store: TaskStore) -> None:
    log = EventLog(store)
    sub = await store.submit(NewTask(name="t"))
    (claimed,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks
    await asyncio.sleep(0.03)
    await store.renew_leases(30, [LeaseRenewal(claimed.id, claimed.token)])
    assert await store.stall_silent_tasks(0.01) == [sub.id]
    events = await log.task_events(sub.id)
    assert events is not None and events[-1].type is EventKind.HEARTBEAT_STALE
    assert events[-1].detail is not None and events[-1].detail.startswith("no heartbeat for ")


async def test_a_cleared_queue_and_a_discarded_concurrency_key_say_why(store: TaskStore) -> None:
    log = EventLog(store)
    holder = await store.submit(
        NewTask(name="t", concurrency_key="k", concurrency_limit=1, on_conflict="discard")
    )
    discarded = await store.submit(
        NewTask(name="t", concurrency_key="k", concurrency_limit=1, on_conflict="discard")
    )
    assert await _types(log, discarded.id) == ["submitted", "cancelled"]
    assert "concurrency key k is at its limit" in (
        (await log.task_events(discarded.id) or [])[-1].detail or ""
    )
    await store.clear_queue("default", "cleared by a test")
    assert (await log.task_events(holder.id) or [])[-1].detail == "cleared by a test"


async def test_an_unknown_task_has_no_events_and_a_pruned_one_loses_them(store: TaskStore) -> None:
    log = EventLog(store)
    assert await log.task_events("01ARZ3NDEKTSV4RRFFQ69G5FAV") is None
    sub = await store.submit(NewTask(name="t"))
    (claimed,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks
    await store.finish([Outcome(claimed.id, claimed.token, TaskStatus.COMPLETED)])
    await store.prune_terminal(TaskStatus.COMPLETED, await store.redis_time_ms() + 1)
    assert await log.task_events(sub.id) is None
    # The audit log keeps them (until trimmed by age).
    assert len((await log.page(AuditQuery(), 10, None)).events) == 3


async def test_the_audit_log_merges_queues_in_time_order_and_its_cursor_loses_nothing(
    store: TaskStore,
) -> None:
    log = EventLog(store)
    ids = []
    for i in range(30):
        ids.append((await store.submit(NewTask(name=f"n{i % 3}", queue=f"q{i % 4}"))).id)
    seen = []
    cursor = None
    while True:
        page = await log.page(AuditQuery(), 7, cursor)
        seen += page.events
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(e.task_id for e in seen) == sorted(ids)
    keys = [(e.at, e.event_id, e.queue) for e in seen]
    assert keys == sorted(keys, key=lambda k: (int(k[1].split("-")[0]), int(k[1].split("-")[1]), k[2]))
    only = await log.page(AuditQuery(queue="q1", task_name="n1"), 100, None)
    assert {e.task_id for e in only.events} == {ids[i] for i in range(30) if i % 4 == 1 and i % 3 == 1}
    typed = await log.page(AuditQuery(types=frozenset({EventKind.STARTED})), 100, None)
    assert typed.events == []


async def test_a_window_bounds_the_audit_log_and_its_summary(store: TaskStore) -> None:
    log = EventLog(store)
    await store.submit(NewTask(name="early"))
    await asyncio.sleep(0.01)
    middle = await store.redis_time_ms()
    await asyncio.sleep(0.01)
    sub = await store.submit(NewTask(name="late", queue="other", correlation_id="c"))
    (claimed,) = (await store.claim("w", 30, 1, [QueueConfig(name="other")])).tasks
    await store.finish([Outcome(claimed.id, claimed.token, TaskStatus.COMPLETED)])
    after = await log.page(AuditQuery(since_ms=middle), 10, None)
    assert [e.task_id for e in after.events] == [sub.id] * 3
    before = await log.page(AuditQuery(until_ms=middle), 10, None)
    assert [e.task_name for e in before.events] == ["early"]
    summary = await log.summary(AuditQuery())
    assert summary.total == 4
    assert summary.by_type == {"submitted": 2, "started": 1, "completed": 1}
    assert summary.by_task_name == {
        "early": {"submitted": 1},
        "late": {"submitted": 1, "started": 1, "completed": 1},
    }
    windowed = await log.summary(AuditQuery(since_ms=middle, correlation_id="c"))
    assert windowed.total == 3 and set(windowed.by_task_name) == {"late"}
    typed = await log.summary(AuditQuery(types=frozenset({EventKind.COMPLETED})))
    assert typed.by_type == {"completed": 1} and typed.total == 1


async def test_a_summary_counts_past_one_script_calls_chunk(store: TaskStore, monkeypatch: object) -> None:
    import jobbers.state.events as events_module

    log = EventLog(store)
    setattr(events_module, "SUMMARY_CHUNK", 7)  # noqa: B010
    try:
        await store.submit_many([NewTask(name="t") for _ in range(30)])
        assert (await log.summary(AuditQuery())).by_type == {"submitted": 30}
    finally:
        setattr(events_module, "SUMMARY_CHUNK", 10_000)  # noqa: B010


async def test_a_filter_that_matches_little_hands_out_a_cursor_within_its_budget(store: TaskStore) -> None:
    import jobbers.state.events as events_module

    log = EventLog(store)
    await store.submit_many([NewTask(name="common") for _ in range(40)])
    rare = await store.submit(NewTask(name="rare"))
    setattr(events_module, "SCAN_BUDGET", 15)  # noqa: B010
    try:
        found = []
        pages = 0
        cursor = None
        while True:
            page = await log.page(AuditQuery(task_name="rare"), 10, cursor)
            found += page.events
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert [e.task_id for e in found] == [rare.id] and pages >= 3
    finally:
        setattr(events_module, "SCAN_BUDGET", 5000)  # noqa: B010


async def test_the_audit_log_is_capped_and_trimmed_by_age(redis: object, key_prefix: str) -> None:
    from redis.asyncio import Redis

    assert isinstance(redis, Redis)
    store = TaskStore(redis, key_prefix, audit_max_events=100)
    await store.submit_many([NewTask(name="t") for _ in range(1000)])
    length = await redis.xlen(store.keys.space("default").audit)
    assert 100 <= length < 1000  # MAXLEN ~ trims whole blocks
    log = EventLog(store)
    removed = await log.trim(await store.redis_time_ms() + 1)
    assert removed == length and await redis.xlen(store.keys.space("default").audit) == 0
