"""Reading the event log: a task's own events, the audit log across queues, its summary, trimming.

The scripts write every event twice in the call that makes it happen (``lua/_common.lua``,
``log_event``): into the task's record (``ev:<stream id>``, kept as long as the task) and to its
queue's audit stream (``Space.audit``, capped at ``AUDIT_MAX_EVENTS`` entries and trimmed by age by
the cleaner). Each queue's stream lies in the queue's own slot, so reading the audit log across
queues merges one stream per queue, in (time, sequence, queue) order; a page resumes strictly
after the last event it returned, and a page cut short by the scan budget (filters that match
little) still hands out a cursor, so nothing is skipped silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobbers.errors import InvalidCursorError
from jobbers.models.event import AuditEvent, EventKind, TaskEvent
from jobbers.state.cursors import Position
from jobbers.state.keys import Space
from jobbers.state.store import TaskStore

#: At most this many audit entries are examined per queue for one page before it is handed back
#: with a cursor (a filter that matches little cannot turn one request into a scan of the log).
SCAN_BUDGET = 5000
#: Entries fetched per round trip while filling a page.
SCAN_CHUNK = 500
#: Entries one summary script call counts (each call is short; the summary loops over them).
SUMMARY_CHUNK = 10_000

_STARTED = EventKind.STARTED.value.encode()

#: A place in the merged order of every queue's stream: (ms, sequence, queue).
Key = tuple[int, int, str]


@dataclass(frozen=True)
class AuditQuery:
    """Which events: a time window (epoch ms, ``until`` excluded) and optional filters."""

    since_ms: int | None = None
    until_ms: int | None = None
    queue: str | None = None
    task_name: str | None = None
    correlation_id: str | None = None
    types: frozenset[EventKind] = frozenset()

    def matches(self, fields: dict[bytes, bytes]) -> bool:
        return (
            (self.task_name is None or _str(fields.get(b"n", b"")) == self.task_name)
            and (self.correlation_id is None or _str(fields.get(b"c", b"")) == self.correlation_id)
            and (not self.types or _str(fields.get(b"y", b"")) in self.types)
        )


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


@dataclass
class AuditSummary:
    """Counts of the events in a window: by type, and by task name and type."""

    total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_task_name: dict[str, dict[str, int]] = field(default_factory=dict)


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def _parse_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def _str(raw: bytes | str) -> str:
    # A detail is cut at MAX_EVENT_DETAIL bytes by the script, maybe inside a character.
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def task_events_of(fields: dict[bytes, bytes], last: int | None = None) -> list[TaskEvent]:
    """The events a task record holds (fields ``ev:<audit stream id>`` holding
    ``<ms>|<type>|<attempt>|<worker>|<detail>``, see ``log_event`` in ``lua/_common.lua``), oldest
    first, the ``last`` ones only when given. The events of a started attempt name the worker of
    its ``started`` event (their worker is ``1``)."""
    found = sorted((_parse_id(name[3:]), raw) for name, raw in fields.items() if name.startswith(b"ev:"))
    events: list[TaskEvent] = []
    worker: str | None = None
    for _, raw in found:
        at, kind, attempt, own, detail = raw.split(b"|", 4)
        if kind == _STARTED:
            worker = _str(own) or None
        events.append(
            TaskEvent(
                at=dt.datetime.fromtimestamp(int(at) / 1000, tz=dt.UTC),
                type=EventKind(_str(kind)),
                attempt=int(attempt),
                worker_id=worker if own == b"1" else (_str(own) or None),
                detail=_str(detail) or None,
            )
        )
    return events if last is None else events[-last:]


def _audit_event(queue: str, entry_id: bytes, fields: dict[bytes, bytes]) -> AuditEvent:
    ms, seq = _parse_id(entry_id)

    def get(name: bytes) -> str:
        return _str(fields.get(name, b""))

    return AuditEvent(
        event_id=f"{ms}-{seq}",
        at=dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC),
        type=EventKind(get(b"y")),
        attempt=int(get(b"a") or 0),
        worker_id=get(b"w") or None,
        detail=get(b"d") or None,
        task_id=get(b"t"),
        task_name=get(b"n"),
        queue=queue,
        correlation_id=get(b"c") or None,
    )


class EventLog:
    """Reads of the event log (the scripts are its only writers), and its trimming by age."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store

    async def task_events(self, task_id: str) -> list[TaskEvent] | None:
        """The events of task ``task_id``, oldest first; None when there is no such task."""
        where = await self.store.locate([task_id])
        if task_id not in where:
            return None
        space = self.store.keys.space(where[task_id])
        fields: dict[bytes, bytes] = await self.store.redis.hgetall(space.task(task_id))  # type: ignore[misc,assignment,unused-ignore]
        if not fields:
            return None
        return task_events_of(fields)

    async def _queues(self, queue: str | None) -> list[str]:
        return [queue] if queue is not None else await self.store.known_queues()

    async def page(self, query: AuditQuery, limit: int, cursor: str | None) -> AuditPage:
        """Events matching ``query``, oldest first, ``limit`` at most, after ``cursor``."""
        after: Key | None = None
        if cursor is not None:
            position = Position.decode(cursor)
            if not (0 <= position.score < 2**63 and position.index < 2**63):
                raise InvalidCursorError(f"malformed cursor {cursor[:80]!r}")
            after = (position.score, position.index, position.member)
        queues = await self._queues(query.queue)
        found: list[tuple[Key, AuditEvent]] = []
        frontier: Key | None = None  # every entry at or before it was examined, in every queue
        for queue in queues:
            matches, last = await self._scan(self.store.keys.space(queue), queue, query, after, limit + 1)
            found += matches
            if last is not None and (frontier is None or last < frontier):
                frontier = last
        found.sort(key=lambda item: item[0])
        if frontier is not None:
            found = [item for item in found if item[0] <= frontier]
        events = [event for _, event in found[:limit]]
        next_key: Key | None = None
        if len(found) > limit:
            next_key = found[limit - 1][0]
        elif frontier is not None:  # every match up to it is on this page
            next_key = frontier
        next_cursor = Position(next_key[1], next_key[0], next_key[2]).encode() if next_key else None
        return AuditPage(events, next_cursor)

    async def _scan(
        self, space: Space, queue: str, query: AuditQuery, after: Key | None, wanted: int
    ) -> tuple[list[tuple[Key, AuditEvent]], Key | None]:
        """Up to ``wanted`` matching events of one queue's stream, and the last entry examined when
        the stream was not read to the end of the window (None when it was)."""
        start = "-" if query.since_ms is None else f"{query.since_ms}-0"
        if after is not None:
            ms, seq, cursor_queue = after
            # Strictly after the cursor in (ms, seq, queue) order: an entry with the cursor's own id
            # comes after it only in a queue sorting after the cursor's.
            if query.since_ms is None or (ms, seq) >= (query.since_ms, 0):
                start = f"{ms}-{seq}" if queue > cursor_queue else f"({ms}-{seq}"
        end = "+" if query.until_ms is None else f"({query.until_ms}-0"
        matches: list[tuple[Key, AuditEvent]] = []
        if query.until_ms is not None and query.until_ms <= 0:  # nothing is older (and "(0-0" is no id)
            return matches, None
        examined = 0
        redis = self.store.redis
        while True:
            count = min(SCAN_CHUNK, SCAN_BUDGET - examined)
            rows: Any = await redis.xrange(space.audit, start, end, count=count)
            for entry_id, fields in rows:
                examined += 1
                ms, seq = _parse_id(entry_id)
                if query.matches(fields):
                    matches.append(((ms, seq, queue), _audit_event(queue, entry_id, fields)))
                    if len(matches) >= wanted:
                        return matches, (ms, seq, queue)
            if len(rows) < count:
                return matches, None
            last_ms, last_seq = _parse_id(rows[-1][0])
            if examined >= SCAN_BUDGET:
                return matches, (last_ms, last_seq, queue)
            start = f"({last_ms}-{last_seq}"

    async def summary(self, query: AuditQuery) -> AuditSummary:
        """Counts of the events matching ``query`` (its ``types`` included) in its window, counted
        by Redis in short script calls (``audit_summary.lua``)."""
        out = AuditSummary()
        if query.until_ms is not None and query.until_ms <= 0:  # nothing is older (and "(0-0" is no id)
            return out
        for queue in await self._queues(query.queue):
            space = self.store.keys.space(queue)
            start = "-" if query.since_ms is None else f"{query.since_ms}-0"
            end = "+" if query.until_ms is None else f"({query.until_ms}-0"
            while True:
                last, flat = await self.store._scripts.run(
                    "audit_summary",
                    space,
                    [space.audit],
                    [start, end, SUMMARY_CHUNK, query.task_name or "", query.correlation_id or ""],
                )
                for i in range(0, len(flat), 3):
                    kind, name, n = _str(flat[i]), _str(flat[i + 1]), int(flat[i + 2])
                    if query.types and kind not in query.types:
                        continue
                    out.total += n
                    out.by_type[kind] = out.by_type.get(kind, 0) + n
                    per_name = out.by_task_name.setdefault(name, {})
                    per_name[kind] = per_name.get(kind, 0) + n
                if not last:
                    break
                start = "(" + _str(last)
        return out

    async def trim(self, older_than_ms: int) -> int:
        """Remove the audit log's events older than ``older_than_ms`` from every queue's stream;
        returns how many. A task's own events stay (they go when the task is pruned)."""
        spaces = [q.space for q in await self.store.all_queue_keys()]
        if not spaces:
            return 0
        pipe = self.store.redis.pipeline(transaction=False)
        for space in spaces:
            pipe.xtrim(space.audit, minid=f"{older_than_ms}-0", approximate=False)
        return sum(int(n) for n in await pipe.execute())


def kinds(values: Collection[str] | None) -> frozenset[EventKind]:
    """Event kinds from their names (already validated by the caller)."""
    return frozenset(EventKind(v) for v in values or ())


def window(since: dt.datetime | None, until: dt.datetime | None) -> tuple[int | None, int | None]:
    """A window as epoch milliseconds."""
    return (_ms(since) if since else None, _ms(until) if until else None)


__all__: Sequence[str] = ("AuditPage", "AuditQuery", "AuditSummary", "EventLog", "kinds", "window")
