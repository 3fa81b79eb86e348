"""Progress from a running task: ``task.progress()`` checked, written with the lease renewal,
shown by /task-status, and logged as a progress event at most every few seconds per task."""

from __future__ import annotations

import math
import re

import pytest

from jobbers.context import RunningTask, check_progress
from jobbers.models.event import EventKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.state.codec import pack_progress
from jobbers.state.events import AuditQuery, EventLog
from jobbers.state.scripts import PROGRESS_EVENT_MS
from jobbers.state.store import LeaseRenewal, NewTask, TaskStore
from jobbers.context import progress_text
from tests.e2e import E2E, wait_until

DEFAULT = [QueueConfig(name="default")]


def test_progress_is_checked_and_is_a_heartbeat() -> None:
    handle = RunningTask(id="T", name="t", version=1, queue="default", params={}, retry_attempt=0)
    handle.progress(3, 10, "pages")
    assert handle.last_progress == (3, 10, "pages") and handle.last_heartbeat is not None
    assert check_progress(0.5) == (0.5, None, None)
    for bad, error in [
        ((True,), TypeError),
        (("3",), TypeError),
        ((-1,), ValueError),
        ((math.nan,), ValueError),
        ((1, 0), ValueError),
        ((1, math.inf), ValueError),
        ((1, 2, 3), TypeError),
        ((1, 2, "x" * 501), ValueError),
    ]:
        with pytest.raises(error):
            check_progress(*bad)


def test_progress_text() -> None:
    assert progress_text(3, 10, "pages") == "3/10 (30%) pages"
    assert progress_text(2.5, None, None) == "2.5"


async def test_a_report_is_stored_shown_and_logged_at_most_every_few_seconds(store: TaskStore) -> None:
    log = EventLog(store)
    sub = await store.submit(NewTask(name="t"))
    (c,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks

    async def report(current: int) -> None:
        lease = LeaseRenewal(c.id, c.token, True, "default", pack_progress(current, 10, "rows", 0), f"{current}/10")
        assert await store.renew_leases(30, [lease]) == ([], [])

    await report(1)
    task = await store.get_task(sub.id)
    assert task is not None and task.progress is not None and task.progress_at is not None
    assert (task.progress.current, task.progress.total, task.progress.message) == (1, 10, "rows")
    await report(2)
    await report(3)
    task = await store.get_task(sub.id)
    assert task is not None and task.progress is not None and task.progress.current == 3
    events = await log.task_events(sub.id)
    assert events is not None
    assert [(e.type, e.detail, e.worker_id) for e in events[2:]] == [(EventKind.PROGRESS, "1/10", "w1")]
    # Past the interval, the next report is an event again; the task's own list keeps only the
    # latest of consecutive progress events, the audit log each of them.
    space = store.keys.space("default")
    await store.redis.hset(space.task(sub.id), "progress_event_at", str(await store.redis_time_ms() - PROGRESS_EVENT_MS))
    await report(4)
    events = await log.task_events(sub.id)
    assert events is not None and [(e.type, e.detail) for e in events[2:]] == [(EventKind.PROGRESS, "4/10")]
    logged = await log.page(AuditQuery(types=frozenset({EventKind.PROGRESS})), 10, None)
    assert [e.detail for e in logged.events] == ["1/10", "4/10"]


async def test_a_report_under_a_lost_lease_is_not_written(store: TaskStore) -> None:
    sub = await store.submit(NewTask(name="t"))
    (c,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks
    lost, _ = await store.renew_leases(30, [LeaseRenewal(c.id, "stale", True, "default", pack_progress(1, 2, None, 0), "1/2")])
    assert [x.token for x in lost] == ["stale"]
    task = await store.get_task(sub.id)
    assert task is not None and task.progress is None and task.status is TaskStatus.STARTED


async def test_a_real_worker_writes_progress_within_about_a_second(e2e: E2E) -> None:
    e2e.platform.worker()
    sub = await e2e.client.submit("progress_steps", {"steps": 4, "pause": 0.6})
    seen: set[float] = set()

    async def reported() -> bool:
        task = await e2e.store.get_task(sub.id)
        if task is not None and task.progress is not None and task.status is TaskStatus.STARTED:
            seen.add(task.progress.current)
        return task is not None and task.status.is_terminal

    await wait_until(reported, 30)
    task = await e2e.store.get_task(sub.id)
    assert task is not None and task.status is TaskStatus.COMPLETED
    assert len(seen) >= 2  # several reports reached Redis while it ran
    assert task.progress is not None and task.progress.total == 4 and task.progress.message is not None
    events = await EventLog(e2e.store).task_events(sub.id)
    assert events is not None
    progress = [e for e in events if e.type is EventKind.PROGRESS]
    assert len(progress) == 1 and re.fullmatch(r"[1-4]/4 \(\d+%\) step [1-4]", progress[0].detail or "")
    assert [e.type for e in events][-1] is EventKind.COMPLETED
