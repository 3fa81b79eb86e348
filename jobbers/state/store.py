"""Typed async functions over the task state in Redis; every transition is one Lua script."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import Task, TaskStatus
from jobbers.state.codec import datetime_to_ms, decode_task, pack, pack_for_lua, unpack
from jobbers.state.keys import Keys, lua_preamble
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
    ResubmitOutcome,
    StallConfig,
    SubmitOutcome,
    TaskRef,
    is_valid_task_id,
    new_task_id,
)

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
    "ResubmitOutcome",
    "StallConfig",
    "SubmitOutcome",
    "TaskRef",
    "TaskStore",
    "is_valid_task_id",
    "new_task_id",
]

SCRIPT_NAMES = (
    "submit",
    "claim",
    "renew",
    "finish",
    "cancel",
    "promote",
    "recover",
    "stall_silent",
    "prune",
    "prune_dlq",
    "prune_rate",
    "dlq_resubmit",
    "dlq_remove",
    "worker_seen",
)


def _load_script_source(name: str) -> str:
    lua = resources.files("jobbers.state") / "lua"
    common = (lua / "_common.lua").read_text()
    return lua_preamble() + common + (lua / f"{name}.lua").read_text()


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class TaskStore:
    """All reads and writes of task state. Scripts are loaded once and called by EVALSHA."""

    def __init__(self, redis: Redis, prefix: str = "{jobbers}:") -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(_load_script_source(name)) for name in SCRIPT_NAMES
        }

    async def _run(self, name: str, args: Sequence[Any]) -> Any:
        return await self._scripts[name](keys=[], args=[self.keys.prefix, *args])

    # -- submit -----------------------------------------------------------------------------

    async def submit(self, task: NewTask) -> SubmitOutcome:
        """Create one task and its queue (or schedule) entry atomically; 1 round trip."""
        return (await self.submit_many([task]))[0]

    async def submit_many(
        self, tasks: Sequence[NewTask], chunk: int = 500, in_flight: int = 4
    ) -> list[SubmitOutcome]:
        """Create many tasks, atomically per task: one script call per ``chunk`` tasks, with up to
        ``in_flight`` calls outstanding so packing the next chunk overlaps Redis running this one."""
        parts = [tasks[i : i + chunk] for i in range(0, len(tasks), chunk)]
        if len(parts) == 1:
            return await self._submit_chunk(parts[0])
        gate = asyncio.Semaphore(in_flight)

        async def submit_part(part: Sequence[NewTask]) -> list[SubmitOutcome]:
            async with gate:
                return await self._submit_chunk(part)

        results = await asyncio.gather(*(submit_part(p) for p in parts))
        return [outcome for part in results for outcome in part]

    async def _submit_chunk(self, part: Sequence[NewTask]) -> list[SubmitOutcome]:
        rows = [
            [
                t.id,
                t.name,
                t.version,
                t.queue,
                pack(t.params),
                datetime_to_ms(t.run_at) if t.run_at else 0,
                t.idempotency_key or "",
                "" if t.max_stalls is None else t.max_stalls,
                int(t.max_heartbeat_interval.total_seconds() * 1000) if t.max_heartbeat_interval else "",
                "" if t.dead_letter is None else ("save" if t.dead_letter else "none"),
                t.trace,
            ]
            for t in part
        ]
        return [
            SubmitOutcome(
                id=_s(task_id),
                status=TaskStatus(_s(status)),
                submitted_at=dt.datetime.fromtimestamp(int(submitted_at) / 1000, tz=dt.UTC),
                created=_s(kind) == "new",
            )
            for kind, task_id, status, submitted_at in await self._run("submit", [pack_for_lua(rows)])
        ]

    # -- worker side ------------------------------------------------------------------------

    async def claim(
        self, worker_id: str, lease_seconds: float, max_count: int, queues: Sequence[QueueConfig]
    ) -> ClaimResult:
        """Claim up to ``max_count`` tasks from ``queues`` (in that order) under a lease."""
        args: list[Any] = [worker_id, int(lease_seconds * 1000), max_count, len(queues)]
        for q in queues:
            args += [q.name, q.max_concurrent or 0, q.rate_numerator or 0, q.rate_window_ms]
        now_ms, retry_in, rows = await self._run("claim", args)
        tasks = [
            ClaimedTask(
                r[0].decode(),
                r[1].decode(),
                r[2].decode(),
                int(r[3]),
                _unpack_params(r[4]),
                int(r[5] or 0),
                int(r[6] or 0),
                (r[7] or b"").decode(),
                r[8].decode(),
                int(r[9] or 0),
                int(float(r[10])),
            )
            for r in rows
        ]
        retry = int(retry_in)
        return ClaimResult(tasks=tasks, now_ms=int(now_ms), retry_in_ms=retry if retry >= 0 else None)

    async def renew_leases(
        self, lease_seconds: float, leases: Sequence[LeaseRenewal]
    ) -> tuple[list[str], list[str]]:
        """Extend the leases of one worker's tasks; 1 round trip for all of them.

        Returns (ids whose lease is lost, ids whose cancellation was requested).
        """
        if not leases:
            return [], []
        args: list[Any] = [int(lease_seconds * 1000), len(leases)]
        for lease in leases:
            args += [lease.id, lease.token, "1" if lease.heartbeat else "0"]
        lost, cancel = await self._run("renew", args)
        return [_s(x) for x in lost], [_s(x) for x in cancel]

    async def publish_task_types(self, types: Sequence[tuple[str, int, StallConfig]]) -> None:
        """Record each task type's stall config (workers do this at start), so the cleaner and the
        scheduler judge stalls and dead-lettering without importing the task module."""
        pipe = self.redis.pipeline(transaction=False)
        for name, version, config in types:
            pipe.hset(
                self.keys.tasktype(f"{name}:{version}"),
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
        await self._run("worker_seen", args)

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
        rows = [
            [
                o.id,
                o.token,
                o.status,
                o.result,
                o.error_type,
                o.error_message,
                "" if o.retry_attempt is None else o.retry_attempt,
                o.delay_ms,
                1 if o.dead_letter else 0,
            ]
            for o in outcomes
        ]
        return [bool(x) for x in await self._run("finish", [pack_for_lua(rows)])]

    # -- producer / manager side ------------------------------------------------------------

    async def cancel(self, task_ids: Sequence[str]) -> list[CancelOutcome]:
        """Cancel tasks; durable for running ones (flag first, then pub/sub)."""
        if not task_ids:
            return []
        rows = await self._run("cancel", list(task_ids))
        return [
            CancelOutcome(id=_s(r[0]), outcome=_s(r[1]), status=_s(r[2]), queue=_s(r[3]), name=_s(r[4]))
            for r in rows
        ]

    async def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, or None."""
        fields: Any = await self.redis.hgetall(self.keys.task(task_id))  # type: ignore[misc,unused-ignore]
        return decode_task(fields) if fields else None

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        """The tasks with these ids that exist, in order, in 1 round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(self.keys.task(task_id))
        return [decode_task(f) for f in await pipe.execute() if f]

    async def ids_by_status(self, status: TaskStatus, offset: int = 0, limit: int = 100) -> list[str]:
        """Ids in ``status``, oldest first."""
        raw: Any = await self.redis.zrange(self.keys.status(status.value), offset, offset + limit - 1)
        return [_s(x) for x in raw]

    async def count_by_status(self, status: TaskStatus) -> int:
        """How many tasks are in ``status``."""
        return int(await self.redis.zcard(self.keys.status(status.value)))

    async def queue_depth(self, queue: str) -> int:
        """Ready (submitted) tasks waiting in ``queue``."""
        return int(await self.redis.zcard(self.keys.queue(queue)))

    async def dead_letter_ids(self, offset: int = 0, limit: int = 100) -> list[str]:
        """Dead-lettered task ids, oldest first."""
        raw: Any = await self.redis.zrange(self.keys.dlq, offset, offset + limit - 1)
        return [_s(x) for x in raw]

    # -- scheduler / cleaner side -----------------------------------------------------------

    async def promote_due(self, queue: str, batch: int) -> Promotion:
        """Promote up to ``batch`` due scheduled tasks of ``queue``."""
        promoted, next_due, now_ms, max_lag = await self._run("promote", [queue, batch])
        return Promotion(
            int(promoted), (int(next_due) if int(next_due) >= 0 else None), int(now_ms), int(max_lag)
        )

    async def queue_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Depth and oldest-entry age of each ready queue, in 1 round trip (read-only)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        for queue in queues:
            pipe.zcard(self.keys.queue(queue))
            pipe.zrange(self.keys.queue(queue), 0, 0, withscores=True)
        replies = await pipe.execute()
        seconds, micros = replies[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        stats = []
        for i, queue in enumerate(queues):
            depth, oldest = replies[1 + 2 * i], replies[2 + 2 * i]
            age = max(now_ms - int(oldest[0][1]), 0) if oldest else 0
            stats.append(QueueStats(queue=queue, depth=int(depth), oldest_age_ms=age))
        return stats

    async def task_refs(self, task_ids: Sequence[str]) -> dict[str, TaskRef]:
        """Queue, name, version and DLQ flag of each task that exists, in 1 round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hmget(self.keys.task(task_id), ["queue", "name", "version", "dead_lettered"])
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
        while True:
            r, s, c = await self._run("recover", [batch])
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
        ids = await self._run("stall_silent", [stale_ms, min_submitted_ms, max_submitted_ms])
        return [_s(x) for x in ids]

    async def prune_terminal(self, status: TaskStatus, older_than_ms: int, batch: int = 500) -> list[str]:
        """Delete tasks that entered terminal ``status`` before ``older_than_ms``; DLQ entries stay."""
        if not status.is_terminal:
            raise ValueError(f"only terminal tasks are pruned, not {status.value}")
        removed: list[str] = []
        offset = 0
        while True:
            ids, skipped = await self._run("prune", [status.value, older_than_ms, batch, offset])
            removed += [_s(x) for x in ids]
            offset += int(skipped)
            if len(ids) + int(skipped) < batch:
                return removed

    async def prune_dead_letters(self, older_than_ms: int, batch: int = 500) -> list[str]:
        """Remove DLQ entries dead-lettered before ``older_than_ms``."""
        removed: list[str] = []
        while True:
            ids = [_s(x) for x in await self._run("prune_dlq", [older_than_ms, batch])]
            removed += ids
            if len(ids) < batch:
                return removed

    async def prune_rate_limits(self, older_than_ms: int) -> int:
        """Remove rate-limit start records older than ``older_than_ms``; returns how many."""
        return int(await self._run("prune_rate", [older_than_ms]))

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
        rows = await self._run("dlq_resubmit", ["1" if reset_retry_count else "0", *task_ids])
        return [ResubmitOutcome(id=_s(r[0]), outcome=_s(r[1]), status=_s(r[2])) for r in rows]

    async def remove_dead_letters(self, task_ids: Sequence[str]) -> list[str]:
        """Remove DLQ entries; returns the ids that were in the DLQ. Task records stay until pruned."""
        if not task_ids:
            return []
        return [_s(x) for x in await self._run("dlq_remove", list(task_ids))]


def _unpack_params(raw: bytes) -> dict[str, Any]:
    value = unpack(raw)
    return value if isinstance(value, dict) else {}
