"""Upgrade Redis data written before queues had their own key spaces (``jobbers_migrate --redis``).

Earlier versions kept every queue's keys and every task record under the one prefix
(``{jobbers}:task:ID``, ``{jobbers}:queue:NAME``, ``{jobbers}:status:STATUS`` ...). Now each queue
has its own space (``{jobbers:NAME}:...``) and a locator finds a task by id. This moves the old
keys into the spaces of their queues, merging with anything the new layout already holds, and
deletes each old key once it is moved, so it is safe to run again, or after an interruption (it
resumes), and finds nothing to do on data that is already upgraded. Stop the old processes first:
one still running keeps writing the old names.

What moves where: each task record to its queue's space (and the locator); the ready, scheduled
and rate-window sets of each queue to its space; the status, in-flight and dead-letter
indexes split by each task's queue; Idempotency-Keys to the space of the task they name (a bulk
request's own key to every queue's); workers' task-type configs to every queue's space; the
per-minute throughput counts split by queue; the lease counter to every queue's space (never
lowered). The global keys (the queue set, workers) keep their names.

Each queue's running set (``running:NAME``, its started ids, old layout or in its space) is gone
since a space's index of started tasks counts them: such a set is deleted, nothing moves (the
status indexes carry those tasks). Nothing reads one any longer, so one left behind is harmless.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from jobbers.models.task import TaskStatus
from jobbers.state.keys import SPACE_KEYS
from jobbers.state.store import TaskStore

#: Old keys examined per round trip.
BATCH = 500
#: A queue's running set (its started ids) in the layouts before: no longer written or read.
OLD_RUNNING = "running:{}"


@dataclass
class UpgradeReport:
    """What an upgrade moved."""

    tasks: int = 0
    queue_keys: int = 0
    index_entries: int = 0
    other_keys: int = 0

    @property
    def moved_anything(self) -> bool:
        return bool(self.tasks or self.queue_keys or self.index_entries or self.other_keys)


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class LayoutUpgrade:
    """The move of one prefix's old shared-space keys into per-queue spaces."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.redis = store.redis
        self.keys = store.keys
        self.old = store.keys.prefix
        self.report = UpgradeReport()

    def _old(self, name: str, part: str = "") -> str:
        template = OLD_RUNNING if name == "running" else SPACE_KEYS[name]
        return self.old + template.replace("{}", part)

    async def _scan(self, name: str) -> AsyncIterator[list[str]]:
        """Batches of old keys of kind ``name`` (their varying part)."""
        head = self._old(name)
        pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in head) + "*"
        batch: list[str] = []
        async for key in self.redis.scan_iter(match=pattern, count=BATCH):
            batch.append(_s(key)[len(head) :])
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    async def run(self) -> UpgradeReport:
        """Move everything; returns what was moved."""
        await self._tasks()
        for status in TaskStatus:
            await self._split_index(
                self._old("status", status.value), lambda s, st=status.value: s.status(st)
            )
        await self._split_index(self._old("inflight"), lambda s: s.inflight)
        await self._split_index(self._old("dlq"), lambda s: s.dlq)
        await self._queue_keys()
        await self._idempotency_keys()
        await self._per_queue_copies()
        return self.report

    async def _queues(self) -> list[str]:
        return await self.store.known_queues()

    async def _tasks(self) -> None:
        async for ids in self._scan("task"):
            pipe = self.redis.pipeline(transaction=False)
            for task_id in ids:
                pipe.hgetall(self._old("task", task_id))
            records = await pipe.execute()
            pipe = self.redis.pipeline(transaction=False)
            queues = set()
            for task_id, fields in zip(ids, records, strict=True):
                if not fields or b"queue" not in fields:
                    continue
                queue = _s(fields[b"queue"])
                queues.add(queue)
                # HSET merges: a field the new layout already wrote for this task is overwritten by
                # the old value only where the old record has it (none should exist: ids are unique).
                pipe.hset(self.keys.space(queue).task(task_id), mapping=fields)
                pipe.hsetnx(self.keys.locator, task_id, queue)
                pipe.delete(self._old("task", task_id))
                self.report.tasks += 1
            if queues:
                pipe.sadd(self.keys.queues, *queues)
            await pipe.execute()

    async def _split_index(self, old_key: str, new_key: Any) -> None:
        """Move the entries of sorted set ``old_key`` to ``new_key(space)`` of each task's queue."""
        while True:
            raw: Any = await self.redis.zrange(old_key, 0, BATCH - 1, withscores=True)
            if not raw:
                return
            ids = [_s(member) for member, _ in raw]
            where = await self.store.locate(ids)
            pipe = self.redis.pipeline(transaction=False)
            for (_member, score), task_id in zip(raw, ids, strict=True):
                if task_id in where:  # an entry of a task that is gone is dropped
                    pipe.zadd(new_key(self.keys.space(where[task_id])), {task_id: score})
                    self.report.index_entries += 1
            pipe.zrem(old_key, *ids)
            await pipe.execute()

    async def _queue_keys(self) -> None:
        for name in ("ready", "sched", "rate"):
            async for queues in self._scan(name):
                for queue in queues:
                    await self._merge(self._old(name, queue), getattr(self.keys.queue(queue), name))
                    self.report.queue_keys += 1
                await self.redis.sadd(self.keys.queues, *queues)  # type: ignore[misc,unused-ignore]
        async for queues in self._scan("running"):
            await self.redis.delete(*(self._old("running", q) for q in queues))
            self.report.queue_keys += len(queues)
        every = await self._queues()
        if every:  # the running sets of the per-queue spaces, before their started index counted
            leftover = [self.keys.space_prefix(q) + OLD_RUNNING.replace("{}", q) for q in every]
            self.report.other_keys += int(await self.redis.delete(*leftover))

    async def _merge(self, old_key: str, new_key: str) -> None:
        """Merge ``old_key`` (a sorted set or set) into ``new_key``, then delete it."""
        kind = _s(await self.redis.type(old_key))
        if kind == "zset":
            raw: Any = await self.redis.zrange(old_key, 0, -1, withscores=True)
            if raw:
                await self.redis.zadd(new_key, {m: s for m, s in raw})
        elif kind == "set":
            members: Any = await self.redis.smembers(old_key)  # type: ignore[misc,unused-ignore]
            if members:
                await self.redis.sadd(new_key, *members)  # type: ignore[misc,unused-ignore]
        await self.redis.delete(old_key)

    async def _idempotency_keys(self) -> None:
        async for keys in self._scan("idem"):
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.get(self._old("idem", key))
                pipe.pttl(self._old("idem", key))
            replies = await pipe.execute()
            values = [
                (k, v, t) for k, v, t in zip(keys, replies[::2], replies[1::2], strict=True) if v is not None
            ]
            where = await self.store.locate(
                [_s(v).split(" ", 1)[0] for _, v, _ in values if not _s(v).startswith(" ")]
            )
            every = await self._queues()
            pipe = self.redis.pipeline(transaction=False)
            for key, value, ttl in values:
                task_id = _s(value).split(" ", 1)[0]
                targets = [where[task_id]] if task_id in where else ([] if task_id else every)
                for queue in targets:
                    pipe.set(
                        self.keys.space(queue).idem(key),
                        value,
                        px=int(ttl) if int(ttl) > 0 else None,
                        nx=True,
                    )
                pipe.delete(self._old("idem", key))
                self.report.other_keys += 1
            await pipe.execute()

    async def _per_queue_copies(self) -> None:
        every = await self._queues()
        async for types in self._scan("tasktype"):
            for name_version in types:
                fields: Any = await self.redis.hgetall(self._old("tasktype", name_version))  # type: ignore[misc,unused-ignore]
                if fields:
                    pipe = self.redis.pipeline(transaction=False)
                    for queue in every:  # a newer report by a worker is kept
                        for field, value in fields.items():
                            pipe.hsetnx(self.keys.space(queue).tasktype(name_version), field, value)
                    await pipe.execute()
                await self.redis.delete(self._old("tasktype", name_version))
                self.report.other_keys += 1
        async for minutes in self._scan("throughput"):
            for minute in minutes:
                old_key = self._old("throughput", minute)
                counts: Any = await self.redis.hgetall(old_key)  # type: ignore[misc,unused-ignore]
                ttl = int(await self.redis.ttl(old_key))
                pipe = self.redis.pipeline(transaction=False)
                for field, n in counts.items():
                    queue = _s(field).rpartition(":")[0]
                    new_key = self.keys.space(queue).throughput(int(minute))
                    pipe.hincrby(new_key, _s(field), int(n))
                    pipe.expire(new_key, ttl if ttl > 0 else 3600)
                pipe.delete(old_key)
                await pipe.execute()
                self.report.other_keys += 1
        counter = await self.redis.get(self._old("lease_counter"))
        if counter is not None:
            for queue in every:
                new_key = self.keys.space(queue).lease_counter
                current = await self.redis.get(new_key)
                if current is None or int(current) < int(counter):
                    await self.redis.set(new_key, counter)
            await self.redis.delete(self._old("lease_counter"))
            self.report.other_keys += 1


async def old_layout_present(store: TaskStore) -> bool:
    """Whether Redis still holds keys of the layout before per-queue spaces (a few EXISTS)."""
    keys = store.keys
    names = [keys.prefix + SPACE_KEYS[n] for n in ("inflight", "dlq", "lease_counter")]
    names += [keys.prefix + SPACE_KEYS["status"].replace("{}", s.value) for s in TaskStatus]
    pipe = store.redis.pipeline(transaction=False)
    for name in names:
        pipe.exists(name)
    return any(int(n) for n in await pipe.execute())


async def upgrade_layout(store: TaskStore) -> UpgradeReport:
    """Move the old shared-space keys of ``store``'s prefix into per-queue spaces (idempotent)."""
    return await LayoutUpgrade(store).run()
