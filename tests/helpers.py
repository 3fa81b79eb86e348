"""Shared assertions: every task has exactly one terminal state and no stray index entries."""

from __future__ import annotations

from collections.abc import Iterable

from jobbers.models.task import TERMINAL_STATUSES, TaskStatus
from jobbers.state.store import TaskStore


async def count_by_status(store: TaskStore, status: TaskStatus) -> int:
    """How many tasks are in ``status`` (by its index)."""
    return int(await store.redis.zcard(store.keys.shared.status(status.value)))


async def ids_by_status(store: TaskStore, status: TaskStatus) -> list[str]:
    """The ids in ``status``, oldest first."""
    return [x.decode() for x in await store.redis.zrange(store.keys.shared.status(status.value), 0, -1)]


async def dead_letter_ids(store: TaskStore) -> list[str]:
    """The dead-lettered ids, oldest first."""
    return [x.decode() for x in await store.redis.zrange(store.keys.shared.dlq, 0, -1)]


async def status_index_of(store: TaskStore, task_id: str) -> list[TaskStatus]:
    """Every status zset that holds ``task_id`` (must be exactly one)."""
    found = []
    for status in TaskStatus:
        if await store.redis.zscore(store.keys.shared.status(status.value), task_id) is not None:
            found.append(status)
    return found


async def assert_exactly_one_terminal_state(store: TaskStore, task_ids: Iterable[str]) -> dict[str, int]:
    """Each task is terminal, listed under exactly that status, holds no lease, and is in no
    ready or scheduled queue. Returns a count per status."""
    counts: dict[str, int] = {}
    ids = list(task_ids)
    tasks = await store.get_tasks(ids)
    assert len(tasks) == len(ids), "lost tasks: " + str(set(ids) - {t.id for t in tasks})
    for task in tasks:
        assert task.status in TERMINAL_STATUSES, f"{task.id} is {task.status}"
        assert await status_index_of(store, task.id) == [task.status], task.id
        assert await store.redis.zscore(store.keys.shared.inflight, task.id) is None
        assert await store.redis.zscore(store.keys.queue(task.queue).ready, task.id) is None
        assert await store.redis.zscore(store.keys.queue(task.queue).sched, task.id) is None
        counts[task.status.value] = counts.get(task.status.value, 0) + 1
    return counts
