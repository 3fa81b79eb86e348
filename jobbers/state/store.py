"""Typed async functions over the task state in Redis; every transition is one Lua script."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from jobbers.errors import IdempotencyConflictError
from jobbers.models.outcomes import CancelKind, ResubmitKind, SubmitKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import Task, TaskStatus
from jobbers.state.codec import pack_for_lua
from jobbers.state.connection import SignalListener
from jobbers.state.keys import DEFAULT_PREFIX, Keys, Space
from jobbers.state.records import (
    CancelOutcome,
    ClaimedTask,
    ClaimResult,
    LeaseRenewal,
    NewTask,
    Outcome,
    Promotion,
    QueueStats,
    RecoverResult,
    RequestKey,
    ResubmitOutcome,
    StallConfig,
    SubmitOutcome,
    TaskRef,
    is_valid_task_id,
    new_task_id,
)
from jobbers.state.scripts import SCRIPT_NAMES, Scripts
from jobbers.state.task_schema import decode_claim, decode_task, finish_row, submit_row

log = logging.getLogger(__name__)

# The records are defined in records.py and re-exported here, where callers meet them.
__all__ = [
    "SCRIPT_NAMES",
    "CancelOutcome",
    "ClaimResult",
    "ClaimedTask",
    "LeaseRenewal",
    "NewTask",
    "Outcome",
    "Promotion",
    "QueueStats",
    "RecoverResult",
    "RequestKey",
    "ResubmitOutcome",
    "StallConfig",
    "SubmitOutcome",
    "TaskRef",
    "TaskStore",
    "is_valid_task_id",
    "new_task_id",
]


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _one_space(spaces: Iterable[Space]) -> Space:
    """The one key space of a script call's keys (a call never spans two: a cluster routes it to
    one slot). Every queue shares one space today; sharding by queue splits calls per space first."""
    it = iter(spaces)
    space = next(it)
    for other in it:
        if other != space:
            raise ValueError(f"one script call spans the key spaces {space.prefix!r} and {other.prefix!r}")
    return space


class TaskStore:
    """All reads and writes of task state: the only door to Redis. Scripts are loaded once and
    called by EVALSHA; ``close()`` closes the connection."""

    def __init__(self, redis: Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self._scripts = Scripts(redis, prefix)
        #: Queues this process has recorded in the global queue set (it is never pruned).
        self._registered_queues: set[str] = set()

    async def close(self) -> None:
        """Close the Redis connection (pool)."""
        await self.redis.aclose()

    def listener(
        self,
        *,
        on_wake: Callable[[str], None] | None = None,
        on_cancel: Callable[[str], None] | None = None,
        on_schedule: Callable[[], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> SignalListener:
        """A listener for this store's wake-up, cancel and schedule signals (run it as a task)."""
        return SignalListener(
            self.redis,
            {
                self.keys.wake_channel: on_wake,
                self.keys.cancel_channel: on_cancel,
                self.keys.sched_channel: (lambda _msg: on_schedule()) if on_schedule else None,
            },
            on_reconnect,
        )

    def _space_of_tasks(self, task_ids: Iterable[str]) -> Space:
        return _one_space(self.keys.task_space(task_id) for task_id in task_ids)

    # -- submit -----------------------------------------------------------------------------

    async def submit(self, task: NewTask) -> SubmitOutcome:
        """Create one task and its queue (or schedule) entry atomically; 1 round trip.

        Raises ``IdempotencyConflictError`` (writing nothing) when its Idempotency-Key was used
        for a request with another fingerprint.
        """
        return (await self.submit_many([task]))[0]

    async def submit_many(
        self,
        tasks: Sequence[NewTask],
        chunk: int = 500,
        in_flight: int = 4,
        request: RequestKey | None = None,
    ) -> list[SubmitOutcome]:
        """Create many tasks, atomically per task: one script call per ``chunk`` tasks, with up to
        ``in_flight`` calls outstanding so packing the next chunk overlaps Redis running this one.

        ``request`` (a bulk request's own Idempotency-Key) is checked and recorded with the first
        chunk, which then runs alone: a conflict raises ``IdempotencyConflictError`` before any
        task of the request is written.
        """
        if not tasks:
            return []
        parts = [tasks[i : i + chunk] for i in range(0, len(tasks), chunk)]
        first: list[SubmitOutcome] = []
        if request is not None or any(t.idempotency_key for t in parts[0]):
            first = await self._submit_chunk(parts[0], request)
            parts = parts[1:]
        if len(parts) <= 1:
            return first + (await self._submit_chunk(parts[0], None) if parts else [])
        gate = asyncio.Semaphore(in_flight)

        async def submit_part(part: Sequence[NewTask]) -> list[SubmitOutcome]:
            async with gate:
                return await self._submit_chunk(part, None)

        results = await asyncio.gather(*(submit_part(p) for p in parts))
        return first + [outcome for part in results for outcome in part]

    async def _submit_chunk(self, part: Sequence[NewTask], request: RequestKey | None) -> list[SubmitOutcome]:
        queues = list(dict.fromkeys(t.queue for t in part))
        queue_keys = [self.keys.queue(q) for q in queues]
        space = _one_space(q.space for q in queue_keys)
        keyed = request is not None or any(t.idempotency_key for t in part)
        args = [
            pack_for_lua([submit_row(t) for t in part]),
            request.key if request else "",
            request.fingerprint if request else "",
            "1" if keyed else "0",
        ]
        keys = [q.ready for q in queue_keys]
        unregistered = [q for q in queues if q not in self._registered_queues]
        if unregistered:
            # The global queue set is not in the space, so it is written beside the script, first.
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(self.keys.queues, *unregistered)
            await self._scripts.run("submit", space, keys, args, client=pipe)
            _, rows = await pipe.execute()
            self._registered_queues.update(unregistered)
        else:
            rows = await self._scripts.run("submit", space, keys, args)
        outcomes = []
        conflicts = []
        for task, (kind, task_id, status, submitted_at, reason) in zip(part, rows, strict=True):
            if _s(kind) == SubmitKind.CONFLICT:
                if task_id:
                    conflicts.append(f"{task.idempotency_key!r} (task {_s(task_id)})")
                continue
            outcomes.append(
                SubmitOutcome(
                    id=_s(task_id),
                    status=TaskStatus(_s(status)),
                    submitted_at=dt.datetime.fromtimestamp(int(submitted_at) / 1000, tz=dt.UTC),
                    created=_s(kind) == SubmitKind.NEW,
                    cancel_reason=_s(reason) or None,
                )
            )
        if len(outcomes) < len(part):
            keys_used = ", ".join(conflicts) or repr(request.key if request else "")
            raise IdempotencyConflictError(
                f"Idempotency-Key {keys_used} was already used for a different request; nothing was written"
            )
        return outcomes

    # -- worker side ------------------------------------------------------------------------

    async def claim(
        self, worker_id: str, lease_seconds: float, max_count: int, queues: Sequence[QueueConfig]
    ) -> ClaimResult:
        """Claim up to ``max_count`` tasks from ``queues`` (in that order) under a lease."""
        queue_keys = [self.keys.queue(q.name) for q in queues]
        args: list[Any] = [worker_id, int(lease_seconds * 1000), max_count]
        for q in queues:
            args += [q.name, q.max_concurrent or 0, q.rate_numerator or 0, q.rate_window_ms]
        space = _one_space(q.space for q in queue_keys)
        now_ms, retry_in, rows = await self._scripts.run("claim", space, [q.ready for q in queue_keys], args)
        retry = int(retry_in)
        return ClaimResult(
            tasks=[decode_claim(r) for r in rows],
            now_ms=int(now_ms),
            retry_in_ms=retry if retry >= 0 else None,
        )

    async def renew_leases(
        self, lease_seconds: float, leases: Sequence[LeaseRenewal]
    ) -> tuple[list[str], list[str]]:
        """Extend the leases of one worker's tasks; 1 round trip for all of them.

        Returns (ids whose lease is lost, ids whose cancellation was requested).
        """
        if not leases:
            return [], []
        space = self._space_of_tasks(lease.id for lease in leases)
        args: list[Any] = [int(lease_seconds * 1000)]
        for lease in leases:
            args += [lease.id, lease.token, "1" if lease.heartbeat else "0"]
        keys = [space.task(lease.id) for lease in leases]
        lost, cancel = await self._scripts.run("renew", space, keys, args)
        return [_s(x) for x in lost], [_s(x) for x in cancel]

    async def publish_task_types(
        self, types: Sequence[tuple[str, int, StallConfig]], queues: Iterable[str]
    ) -> None:
        """Record each task type's stall config in the key space of every queue in ``queues`` (a
        worker does this for the queues it consumes), so lease recovery and the cleaner judge stalls
        and dead-lettering of the tasks in them without importing the task module."""
        spaces = {self.keys.queue(q).space for q in queues}
        if not spaces or not types:
            return
        pipe = self.redis.pipeline(transaction=False)
        for space in spaces:
            for name, version, config in types:
                pipe.hset(
                    space.tasktype(f"{name}:{version}"),
                    mapping={
                        "hb_timeout": int(config.max_heartbeat_seconds * 1000),
                        "max_stalls": config.max_stalls,
                        "dlq_policy": "save" if config.dead_letter else "none",
                    },
                )
        await pipe.execute()

    async def report_worker(self, worker_id: str, ttl_seconds: float, info: Mapping[str, str | int]) -> None:
        """Mark a worker alive for ``ttl_seconds`` of Redis time, with what it runs (``info``); the
        admin overview lists the workers whose last report has not expired."""
        args: list[Any] = [worker_id, max(int(ttl_seconds * 1000), 1)]
        for name, value in info.items():
            args += [name, value]
        keys = [self.keys.workers, self.keys.worker(worker_id)]
        await self._scripts.run_global("worker_seen", keys, args)

    async def forget_worker(self, worker_id: str) -> None:
        """Take a worker off the live list at once (on a clean exit)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.workers, worker_id)
        pipe.delete(self.keys.worker(worker_id))
        await pipe.execute()

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Write attempt outcomes, each fenced by its lease token; False marks a rejected late write."""
        if not outcomes:
            return []
        space = self._space_of_tasks(o.id for o in outcomes)
        keys = [space.task(o.id) for o in outcomes]
        rows = pack_for_lua([finish_row(o) for o in outcomes])
        return [bool(x) for x in await self._scripts.run("finish", space, keys, [rows])]

    # -- producer / manager side ------------------------------------------------------------

    async def cancel(self, task_ids: Sequence[str]) -> list[CancelOutcome]:
        """Cancel tasks; durable for running ones (flag first, then pub/sub)."""
        if not task_ids:
            return []
        space = self._space_of_tasks(task_ids)
        rows = await self._scripts.run("cancel", space, [space.task(i) for i in task_ids], list(task_ids))
        return [
            CancelOutcome(
                id=_s(r[0]), outcome=CancelKind(_s(r[1])), status=_s(r[2]), queue=_s(r[3]), name=_s(r[4])
            )
            for r in rows
        ]

    async def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, or None."""
        key = self.keys.task_space(task_id).task(task_id)
        fields: Any = await self.redis.hgetall(key)  # type: ignore[misc,unused-ignore]
        return decode_task(fields) if fields else None

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        """The tasks with these ids that exist, in order, in 1 round trip."""
        return [t for t in await self.fetch_tasks(task_ids) if t is not None]

    async def fetch_tasks(self, task_ids: Sequence[str]) -> list[Task | None]:
        """The tasks with these ids, aligned with them (None where a record is gone); 1 round trip."""
        if not task_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(self.keys.task_space(task_id).task(task_id))
        replies = await pipe.execute()
        return [_decoded(i, fields) if fields else None for i, fields in zip(task_ids, replies, strict=True)]

    async def queue_depth(self, queue: str) -> int:
        """Ready (submitted) tasks waiting in ``queue``."""
        return int(await self.redis.zcard(self.keys.queue(queue).ready))

    # -- scheduler / cleaner side -----------------------------------------------------------

    async def promote_due(self, queue: str, batch: int) -> Promotion:
        """Promote up to ``batch`` due scheduled tasks of ``queue``."""
        q = self.keys.queue(queue)
        promoted, next_due, now_ms, max_lag = await self._scripts.run(
            "promote", q.space, [q.sched, q.ready, q.conc_due], [queue, batch]
        )
        return Promotion(
            int(promoted), (int(next_due) if int(next_due) >= 0 else None), int(now_ms), int(max_lag)
        )

    async def queue_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Depth, oldest-ready-task age, scheduled and running counts and pause state of each queue;
        one script call per key space, pipelined in 1 round trip (read-only)."""
        if not queues:
            return []
        by_space: dict[Space, list[str]] = {}
        for queue in queues:
            by_space.setdefault(self.keys.queue(queue).space, []).append(queue)
        pipe = self.redis.pipeline(transaction=False)
        for space, names in by_space.items():
            keys = [self.keys.queue(q).ready for q in names]
            await self._scripts.run("queue_stats", space, keys, names, client=pipe)
        found: dict[str, QueueStats] = {}
        for names, (raw_now, rows) in zip(by_space.values(), await pipe.execute(), strict=True):
            now_ms = int(raw_now)
            # The share of the previous minute that lies inside the last 60 s.
            earlier = 1 - (now_ms % 60_000) / 60_000
            for queue, row in zip(names, rows, strict=True):
                ready, scheduled, running, paused, oldest, done, failed, done_1, failed_1, blocked = map(
                    int, row
                )
                found[queue] = QueueStats(
                    queue=queue,
                    depth=ready,
                    oldest_age_ms=max(now_ms - oldest, 0) if oldest >= 0 else 0,
                    scheduled=scheduled,
                    running=running,
                    paused=bool(paused),
                    blocked=blocked,
                    completed_last_minute=done + round(done_1 * earlier),
                    failed_last_minute=failed + round(failed_1 * earlier),
                )
        return [found[q] for q in queues]

    async def pause_queue(self, queue: str) -> None:
        """Pause ``queue``: it still takes submits and promotions, but no claim starts its tasks
        (running ones finish). Kept in Redis, in the queue's key space, until ``resume_queue``."""
        await self.redis.set(self.keys.queue(queue).paused, "1")

    async def resume_queue(self, queue: str) -> None:
        """Resume ``queue``; idle workers are woken at once (no wait for a config refresh)."""
        await self.redis.delete(self.keys.queue(queue).paused)
        await self.redis.publish(self.keys.wake_channel, queue)

    async def clear_queue(self, queue: str, reason: str, batch: int = 500) -> int:
        """End every task waiting in ``queue`` (ready, scheduled or blocked on a concurrency key)
        ``cancelled`` with ``reason``
        as its ``cancel_reason``; returns how many. Atomic per batch of ``batch`` tasks."""
        q = self.keys.queue(queue)
        cleared = 0
        while True:
            keys = [q.ready, q.sched, q.conc_due]
            done, seen = await self._scripts.run("clear", q.space, keys, [queue, batch, reason])
            cleared += int(done)
            if int(seen) < batch:
                return cleared

    async def forget_queue_state(self, queue: str) -> None:
        """Drop what Redis keeps about a deleted queue's control (its pause flag), so a queue
        created again under the name starts afresh."""
        await self.redis.delete(self.keys.queue(queue).paused)

    async def task_refs(self, task_ids: Sequence[str]) -> dict[str, TaskRef]:
        """Queue, name, version and DLQ flag of each task that exists, in 1 round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hmget(
                self.keys.task_space(task_id).task(task_id), ["queue", "name", "version", "dead_lettered"]
            )
        refs = {}
        for task_id, (queue, name, version, dead) in zip(task_ids, await pipe.execute(), strict=True):
            if queue is not None:
                refs[task_id] = TaskRef(_s(queue), _s(name or b""), int(version or 1), dead == b"1")
        return refs

    async def known_queues(self) -> list[str]:
        """Every queue name that ever held a task."""
        raw: Any = await self.redis.smembers(self.keys.queues)  # type: ignore[misc,unused-ignore]
        return sorted(_s(x) for x in raw)

    async def recover_expired_leases(self, batch: int = 500) -> RecoverResult:
        """Re-queue (or stall) tasks whose lease expired, judged by Redis time."""
        requeued: list[str] = []
        stalled: list[str] = []
        cancelled: list[str] = []
        space = self.keys.shared
        while True:
            r, s, c = await self._scripts.run("recover", space, [space.inflight], [batch])
            requeued += [_s(x) for x in r]
            stalled += [_s(x) for x in s]
            cancelled += [_s(x) for x in c]
            if len(r) + len(s) + len(c) < batch:
                return RecoverResult(requeued, stalled, cancelled)

    async def stall_silent_tasks(
        self, stale_seconds: float | None, min_submitted_ms: int = 0, max_submitted_ms: int = 2**53
    ) -> list[str]:
        """Mark started tasks whose heartbeat went silent as stalled; returns their ids."""
        stale_ms = int(stale_seconds * 1000) if stale_seconds else 0
        space = self.keys.shared
        ids = await self._scripts.run(
            "stall_silent",
            space,
            [space.status(TaskStatus.STARTED.value)],
            [stale_ms, min_submitted_ms, max_submitted_ms],
        )
        return [_s(x) for x in ids]

    async def prune_terminal(self, status: TaskStatus, older_than_ms: int, batch: int = 500) -> list[str]:
        """Delete tasks that entered terminal ``status`` before ``older_than_ms``; DLQ entries stay."""
        if not status.is_terminal:
            raise ValueError(f"only terminal tasks are pruned, not {status.value}")
        removed: list[str] = []
        offset = 0
        space = self.keys.shared
        keys = [space.status(status.value), space.dlq]
        while True:
            ids, skipped = await self._scripts.run(
                "prune", space, keys, [status.value, older_than_ms, batch, offset]
            )
            removed += [_s(x) for x in ids]
            offset += int(skipped)
            if len(ids) + int(skipped) < batch:
                return removed

    async def prune_dead_letters(self, older_than_ms: int, batch: int = 500) -> list[str]:
        """Remove DLQ entries dead-lettered before ``older_than_ms``."""
        removed: list[str] = []
        space = self.keys.shared
        while True:
            ids = [
                _s(x)
                for x in await self._scripts.run("prune_dlq", space, [space.dlq], [older_than_ms, batch])
            ]
            removed += ids
            if len(ids) < batch:
                return removed

    async def prune_rate_limits(self, older_than_ms: int) -> int:
        """Remove rate-limit start records older than ``older_than_ms``, of every queue ever used;
        returns how many."""
        by_space: dict[Space, list[str]] = {}
        for queue in await self.known_queues():
            q = self.keys.queue(queue)
            by_space.setdefault(q.space, []).append(q.rate)
        removed = 0
        for space, rate_keys in by_space.items():
            removed += int(await self._scripts.run("prune_rate", space, rate_keys, [older_than_ms]))
        return removed

    async def redis_time_ms(self) -> int:
        """Redis's clock in epoch milliseconds (all lease and age decisions use it)."""
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def ping(self) -> bool:
        """Whether Redis answers; raises the client's connection error when it does not."""
        return bool(await self.redis.ping())  # type: ignore[misc,unused-ignore]

    # -- dead letter queue (manager side) ---------------------------------------------------

    async def resubmit_dead_letters(
        self, task_ids: Sequence[str], reset_retry_count: bool
    ) -> list[ResubmitOutcome]:
        """Move dead-lettered tasks back to their queues (guarded on DLQ membership and status)."""
        if not task_ids:
            return []
        space = self._space_of_tasks(task_ids)
        keys = [space.task(i) for i in task_ids]
        rows = await self._scripts.run(
            "dlq_resubmit", space, keys, ["1" if reset_retry_count else "0", *task_ids]
        )
        return [ResubmitOutcome(id=_s(r[0]), outcome=ResubmitKind(_s(r[1])), status=_s(r[2])) for r in rows]

    async def remove_dead_letters(self, task_ids: Sequence[str]) -> list[str]:
        """Remove DLQ entries; returns the ids that were in the DLQ. Task records stay until pruned."""
        if not task_ids:
            return []
        space = self._space_of_tasks(task_ids)
        keys = [space.task(i) for i in task_ids]
        return [_s(x) for x in await self._scripts.run("dlq_remove", space, keys, list(task_ids))]


def _decoded(task_id: str, fields: dict[bytes, bytes]) -> Task | None:
    # A record that cannot be decoded (damaged, or written by other means) is left out, and said
    # so, rather than failing the listing of every other task.
    try:
        return decode_task(fields)
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("task %s cannot be decoded and is left out: %r", task_id, exc)
        return None
