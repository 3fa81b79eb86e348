"""Read-only platform figures for the admin overview: counts per queue and status, recent
throughput, and the workers that are alive. One snapshot costs four pipelined round trips, however
many queues (each queue's figures live in its own key space and are summed here).

Throughput comes from per-minute hashes that the state-transition scripts increment as tasks
end (``count_terminal`` in ``lua/_common.lua``); workers report themselves alive through
``TaskStore.report_worker``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobbers.models.task import LISTED_STATUSES, TaskStatus
from jobbers.state.store import TaskStore

#: Minutes of throughput kept in Redis (the hashes expire after an hour).
MAX_THROUGHPUT_MINUTES = 60
MINUTE_MS = 60_000


@dataclass(frozen=True)
class QueueCounts:
    """Tasks of one queue: waiting to run, running, waiting for their run time, dead-lettered."""

    queue: str
    ready: int
    running: int
    scheduled: int
    dead_lettered: int


@dataclass(frozen=True)
class MinuteCounts:
    """Terminal outcomes in one minute: queue -> status -> count."""

    minute_ms: int
    by_queue: dict[str, dict[str, int]]


@dataclass(frozen=True)
class WorkerRecord:
    """A worker's last report (times are Redis time, ms)."""

    id: str
    role: str
    queues: list[str]
    running: int
    slots: int
    processed: int
    first_seen_ms: int
    last_seen_ms: int


@dataclass(frozen=True)
class Snapshot:
    """Everything the overview shows, as of ``now_ms`` (Redis time)."""

    now_ms: int
    queues: list[QueueCounts]
    statuses: dict[TaskStatus, int]
    dead_lettered: int
    #: How many DLQ entries the per-queue ``dead_lettered`` counts cover (all, unless very long).
    dead_lettered_counted: int
    throughput: list[MinuteCounts]
    workers: list[WorkerRecord]


class PlatformStats:
    """Figures over a ``TaskStore``'s keys."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.redis = store.redis
        self.keys = store.keys

    async def snapshot(self, queues: Sequence[str], minutes: int = 15) -> Snapshot:
        """Counts of ``queues`` and of every status, ``minutes`` of throughput (oldest first, the
        current minute last) and the live workers: each queue's figures are read in its own key
        space and summed (one pipelined round trip for all of them)."""
        minutes = max(1, min(minutes, MAX_THROUGHPUT_MINUTES))
        statuses = LISTED_STATUSES
        keys = self.keys
        every = await self.store.all_queue_keys()
        now_ms = await self._redis_time_ms()
        first_minute = now_ms // MINUTE_MS - minutes + 1

        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            q = keys.queue(queue)
            pipe.zcard(q.ready)
            pipe.zcard(q.space.status(TaskStatus.STARTED.value))  # the space holds only this queue
            pipe.zcard(q.sched)
        for q in every:
            for status in statuses:
                pipe.zcard(q.space.status(status.value))
            pipe.zcard(q.space.dlq)
            for minute in range(first_minute, first_minute + minutes):
                pipe.hgetall(q.space.throughput(minute))
        pipe.zrangebyscore(keys.workers, now_ms, "+inf")
        replies: list[Any] = await pipe.execute()

        at = 3 * len(queues)
        counts = replies[:at]
        status_counts: dict[TaskStatus, int] = dict.fromkeys(statuses, 0)
        dead_by_queue: dict[str, int] = {}
        merged: list[dict[str, dict[str, int]]] = [{} for _ in range(minutes)]
        for q in every:
            for status in statuses:
                status_counts[status] += int(replies[at])
                at += 1
            dead_by_queue[q.name] = int(replies[at])
            at += 1
            for i in range(minutes):
                for queue, by_status in _split_fields(replies[at]).items():
                    into = merged[i].setdefault(queue, {})
                    for status_name, n in by_status.items():
                        into[status_name] = into.get(status_name, 0) + n
                at += 1
        worker_ids = [_text(x) for x in replies[at]]
        dlq_total = sum(dead_by_queue.values())

        details: list[Any] = []
        if worker_ids:
            pipe = self.redis.pipeline(transaction=False)
            for worker_id in worker_ids:
                pipe.hgetall(keys.worker(worker_id))
            details = await pipe.execute()
        return Snapshot(
            now_ms=now_ms,
            queues=[
                QueueCounts(
                    queue=queue,
                    ready=int(counts[3 * i]),
                    running=int(counts[3 * i + 1]),
                    scheduled=int(counts[3 * i + 2]),
                    dead_lettered=dead_by_queue.get(queue, 0),
                )
                for i, queue in enumerate(queues)
            ],
            statuses=status_counts,
            dead_lettered=dlq_total,
            dead_lettered_counted=dlq_total,
            throughput=[MinuteCounts((first_minute + i) * MINUTE_MS, merged[i]) for i in range(minutes)],
            workers=[
                _worker(worker_id, fields)
                for worker_id, fields in zip(worker_ids, details, strict=True)
                if fields  # its hash expired between the two round trips
            ],
        )

    async def _redis_time_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000


def outcomes_by_queue(minutes: Sequence[MinuteCounts]) -> dict[str, dict[str, int]]:
    """queue -> status -> tasks that ended so over ``minutes`` (the overview's recent counts)."""
    out: dict[str, dict[str, int]] = {}
    for minute in minutes:
        for queue, by_status in minute.by_queue.items():
            totals = out.setdefault(queue, {})
            for status, n in by_status.items():
                totals[status] = totals.get(status, 0) + n
    return out


def _split_fields(fields: dict[Any, Any]) -> dict[str, dict[str, int]]:
    """``{"queue:status": n}`` -> ``{queue: {status: n}}`` (queue names hold no ``:``)."""
    out: dict[str, dict[str, int]] = {}
    for field, value in fields.items():
        queue, _, status = _text(field).rpartition(":")
        out.setdefault(queue, {})[status] = int(value)
    return out


def _worker(worker_id: str, raw: dict[Any, Any]) -> WorkerRecord:
    fields = {_text(k): _text(v) for k, v in raw.items()}

    def number(name: str) -> int:
        try:
            return int(fields.get(name) or 0)
        except ValueError:
            return 0

    return WorkerRecord(
        id=worker_id,
        role=fields.get("role", ""),
        queues=[q for q in fields.get("queues", "").split(",") if q],
        running=number("running"),
        slots=number("slots"),
        processed=number("processed"),
        first_seen_ms=number("first_seen"),
        last_seen_ms=number("last_seen"),
    )


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
