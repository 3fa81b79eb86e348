"""Shared assertions: every task has exactly one terminal state and no stray index entries."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from jobbers.models.task import TERMINAL_STATUSES, TaskStatus
from jobbers.state.keys import Space
from jobbers.state.store import TaskStore


async def spaces(store: TaskStore) -> list[Space]:
    """The key space of every queue that ever held a task."""
    return [q.space for q in await store.all_queue_keys()]


async def _merged_index(store: TaskStore, key_of: Callable[[Space], str]) -> list[str]:
    entries: list[tuple[float, str]] = []
    for space in await spaces(store):
        raw = await store.redis.zrange(key_of(space), 0, -1, withscores=True)
        entries += [(score, x.decode()) for x, score in raw]
    return [member for _, member in sorted(entries)]


async def count_by_status(store: TaskStore, status: TaskStatus) -> int:
    """How many tasks are in ``status`` (by its index, over every queue)."""
    return sum([int(await store.redis.zcard(space.status(status.value))) for space in await spaces(store)])


async def ids_by_status(store: TaskStore, status: TaskStatus) -> list[str]:
    """The ids in ``status``, oldest first."""
    return await _merged_index(store, lambda space: space.status(status.value))


async def dead_letter_ids(store: TaskStore) -> list[str]:
    """The dead-lettered ids, oldest first."""
    return await _merged_index(store, lambda space: space.dlq)


async def task_space(store: TaskStore, task_id: str) -> Space:
    """The key space of an existing task (by the locator)."""
    queue = (await store.locate([task_id]))[task_id]
    return store.keys.space(queue)


async def status_index_of(store: TaskStore, task_id: str) -> list[TaskStatus]:
    """Every status zset that holds ``task_id`` (must be exactly one, in its queue's space)."""
    found = []
    for space in await spaces(store):
        for status in TaskStatus:
            if await store.redis.zscore(space.status(status.value), task_id) is not None:
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
        assert await store.redis.zscore(store.keys.space(task.queue).inflight, task.id) is None
        assert await store.redis.zscore(store.keys.queue(task.queue).ready, task.id) is None
        assert await store.redis.zscore(store.keys.queue(task.queue).sched, task.id) is None
        counts[task.status.value] = counts.get(task.status.value, 0) + 1
    return counts
