"""Read-only listings of tasks for the API: filtered, ordered, and paged by an opaque cursor.

Every listing walks a sorted set (a per-status index, a queue's schedule, or the DLQ) in
(score, id) order and resumes *after* the last item it returned, so a page is never shifted by
tasks that leave the set meanwhile. A page says ``next_cursor = None`` only when the walk reached
the end: a page cut short by the scan budget (filters that match little) still hands out a cursor,
so nothing is truncated silently. A page's ``total`` is the size of the sets it walks (the
listed statuses, or the DLQ): filters on queue or task name narrow the page but not the total,
which stays one ZCARD per set instead of a scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jobbers.models.task import Task, TaskStatus
from jobbers.state.cursors import Position
from jobbers.state.keys import Space
from jobbers.state.store import TaskStore

#: At most this many index entries are examined per page before it is handed back with a cursor,
#: so a filter that matches little cannot turn one request into a scan of every task.
SCAN_BUDGET = 5000
#: Index entries fetched per round trip while scanning with a filter.
SCAN_CHUNK = 500


@dataclass(frozen=True)
class TaskFilter:
    """Optional filters on a task's queue, name and recurring entry, and where a walk starts:
    ``since_ms`` skips the entries scored before it (the time a task entered its status, or was
    dead-lettered) by seeking, so it costs nothing however many older entries there are."""

    queue: str | None = None
    task_name: str | None = None
    since_ms: int | None = None
    #: Only tasks fired by this recurring entry.
    recurring_key: str | None = None
    #: Only tasks submitted with this correlation id.
    correlation_id: str | None = None

    @property
    def is_empty(self) -> bool:
        return (
            self.queue is None
            and self.task_name is None
            and self.recurring_key is None
            and self.correlation_id is None
        )

    def matches(self, task: Task) -> bool:
        return (
            (self.queue is None or task.queue == self.queue)
            and (self.task_name is None or task.name == self.task_name)
            and (self.recurring_key is None or task.recurring_key == self.recurring_key)
            and (self.correlation_id is None or task.correlation_id == self.correlation_id)
        )


@dataclass(frozen=True)
class Listed:
    """A task and the score it was listed by (ms): entered its status, runs, or was dead-lettered."""

    task: Task
    score_ms: int


@dataclass(frozen=True)
class TaskPage:
    """One page; ``total`` is the size of the sets walked, before any filter on queue or task name."""

    items: list[Listed]
    next_cursor: str | None
    total: int


#: One index of a walk: the same sorted set in each queue's key space, merged in (score, id) order.
Sources = Sequence[tuple[Space, str]]


class TaskQueries:
    """Listings over a ``TaskStore``'s indexes. Each queue keeps its own indexes (in its key
    space); a listing over queues merges them in (score, id) order, so a cursor (the last score
    and id returned) resumes every queue's index at once and never skips or repeats a task."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.redis = store.redis
        self.keys = store.keys

    async def _spaces(self, queue: str | None = None) -> list[Space]:
        """The key spaces a listing reads: one queue's, or every queue's."""
        if queue is not None:
            return [self.keys.space(queue)]
        return [q.space for q in await self.store.all_queue_keys()]

    async def list_by_status(
        self, statuses: Sequence[TaskStatus], filters: TaskFilter, limit: int, cursor: str | None
    ) -> TaskPage:
        """Tasks in ``statuses`` (in that order), each status oldest first."""
        wanted = list(statuses)
        spaces = await self._spaces(filters.queue)
        indexes = [[(space, space.status(s.value)) for space in spaces] for s in wanted]

        def keep(index: int, task: Task) -> bool:
            # A task moving between statuses may be read after its index entry: list it once, where it is.
            return task.status is wanted[index] and filters.matches(task)

        page_items, next_position = await self._walk(
            indexes, keep, filters.is_empty or filters.task_name is None, limit, cursor, filters.since_ms
        )
        every = spaces if filters.queue is None else await self._spaces()
        total = await self._count([space.status(s.value) for s in wanted for space in every])
        return TaskPage(page_items, next_position, total)

    async def list_dead_letters(self, filters: TaskFilter, limit: int, cursor: str | None) -> TaskPage:
        """Dead-lettered tasks, oldest dead-lettering first."""
        spaces = await self._spaces(filters.queue)
        indexes = [[(space, space.dlq) for space in spaces]]
        page_items, next_position = await self._walk(
            indexes,
            lambda _index, task: filters.matches(task),
            filters.is_empty or filters.task_name is None,
            limit,
            cursor,
            filters.since_ms,
        )
        every = spaces if filters.queue is None else await self._spaces()
        return TaskPage(page_items, next_position, await self._count([space.dlq for space in every]))

    async def list_scheduled(self, queues: Sequence[str], limit: int, cursor: str | None) -> TaskPage:
        """Scheduled tasks (delayed submissions and retry delays) of ``queues``, soonest first."""
        after = _after(Position.decode(cursor)) if cursor else None
        sources = [(self.keys.space(q), self.keys.queue(q).sched) for q in queues]
        merged, _done = await self._merged(sources, after, limit + 1)
        more = len(merged) > limit
        merged = merged[:limit]
        tasks = await self.store._records([(space, member) for _, member, space in merged])
        items = [
            Listed(task, score)
            for (score, _, _), task in zip(merged, tasks, strict=True)
            if task is not None and task.status is TaskStatus.SCHEDULED
        ]
        next_cursor = Position(0, merged[-1][0], merged[-1][1]).encode() if more and merged else None
        return TaskPage(items, next_cursor, await self._count([k for _, k in sources]))

    async def count_in_status(self, status: TaskStatus) -> int:
        """How many tasks are in ``status``, over every queue."""
        return await self._count([space.status(status.value) for space in await self._spaces()])

    # -- walking the indexes ----------------------------------------------------------------

    async def _walk(
        self,
        indexes: Sequence[Sources],
        keep: Callable[[int, Task], bool],
        unfiltered: bool,
        limit: int,
        cursor: str | None,
        since_ms: int | None = None,
    ) -> tuple[list[Listed], str | None]:
        """Up to ``limit`` kept tasks from ``indexes`` in turn (each merged over its queues),
        resuming after ``cursor``, each from score ``since_ms`` on."""
        start = Position.decode(cursor) if cursor else None
        floor = (since_ms, "") if since_ms is not None else None  # before every id of that score
        found: list[Listed] = []
        last_returned: Position | None = None
        examined = 0
        # Unfiltered, one extra entry tells whether another page exists.
        chunk = min(limit + 1, SCAN_CHUNK) if unfiltered else SCAN_CHUNK
        for index in range(start.index if start else 0, len(indexes)):
            after = _after(start) if start and index == start.index else None
            if floor is not None and (after is None or after < floor):
                after = floor
            while True:
                entries, done = await self._merged(indexes[index], after, chunk)
                tasks = await self.store._records([(space, member) for _, member, space in entries])
                for (score, member, _), task in zip(entries, tasks, strict=True):
                    examined += 1
                    position = Position(index, score, member)
                    if task is None or not keep(index, task):
                        if examined >= SCAN_BUDGET:
                            return found, position.encode()
                        continue
                    if len(found) == limit:
                        return found, last_returned.encode() if last_returned else None
                    found.append(Listed(task, score))
                    last_returned = position
                    if examined >= SCAN_BUDGET:
                        return found, position.encode()
                if done or not entries:
                    break
                after = (entries[-1][0], entries[-1][1])
        return found, None

    async def _merged(
        self, sources: Sources, after: tuple[int, str] | None, count: int
    ) -> tuple[list[tuple[int, str, Space]], bool]:
        """The next (up to ``count``) (score, id, space) entries of ``sources`` strictly after
        ``after``, merged in (score, id) order, and whether they reach the end of every source.

        One pipelined round trip: ``count`` entries from each source; entries past the last of a
        source that may hold more wait for the next call, so the merge never skips one.
        """
        if not sources:
            return [], True
        pipe = self.redis.pipeline(transaction=False)
        for _, key in sources:
            pipe.zrangebyscore(
                key, after[0] if after else "-inf", "+inf", start=0, num=count, withscores=True
            )
        merged: list[tuple[int, str, Space]] = []
        bound: tuple[int, str] | None = None  # the lowest last entry of a source that may hold more
        for (space, key), raw in zip(sources, await pipe.execute(), strict=True):
            entries = [(int(score), _text(member)) for member, score in raw]
            if len(raw) == count:
                entries = [e for e in entries if after is None or e > after]
                if len(entries) < count:  # ties at the cursor's score: page on past them
                    entries = await self._entries_after(key, after, count)
                if len(entries) == count and (bound is None or entries[-1] < bound):
                    bound = entries[-1]
            else:
                entries = [e for e in entries if after is None or e > after]
            merged += [(score, member, space) for score, member in entries]
        merged.sort(key=lambda e: (e[0], e[1]))
        if bound is not None:
            merged = [e for e in merged if (e[0], e[1]) <= bound]
        return merged[:count], bound is None and len(merged) <= count

    async def _entries_after(
        self, key: str, after: tuple[int, str] | None, count: int
    ) -> list[tuple[int, str]]:
        """Up to ``count`` (score, id) entries of ``key`` strictly after ``after``."""
        out: list[tuple[int, str]] = []
        offset = 0
        while len(out) < count:
            raw: Any = await self.redis.zrangebyscore(
                key, after[0] if after else "-inf", "+inf", start=offset, num=count, withscores=True
            )
            offset += len(raw)
            out += [e for e in ((int(s), _text(m)) for m, s in raw) if after is None or e > after]
            if len(raw) < count:
                break
        return out[:count]

    async def _counts(self, keys: Sequence[str]) -> list[int]:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(key)
        return [int(n) for n in await pipe.execute()]

    async def _count(self, keys: Sequence[str]) -> int:
        return sum(await self._counts(keys)) if keys else 0


def _after(position: Position) -> tuple[int, str]:
    return (position.score, position.member)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
