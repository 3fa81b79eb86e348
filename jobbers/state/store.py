"""Typed async functions over the task state in Redis; every transition is one Lua script."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobbers.errors import IdempotencyConflictError
from jobbers.models.outcomes import CancelKind, ResubmitKind, SubmitKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import Task, TaskStatus
from jobbers.state.codec import pack_for_lua
from jobbers.state.connection import SignalListener, is_cluster
from jobbers.state.keys import DEFAULT_PREFIX, Keys, QueueKeys, Space
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
    is_fresh_id,
    is_valid_task_id,
    new_task_id,
)
from jobbers.state.scripts import DEFAULT_AUDIT_MAX_EVENTS, SCRIPT_NAMES, Call, Scripts
from jobbers.state.task_schema import decode_claim, decode_task, finish_row, submit_row
from jobbers.state.workflows import fresh_ids_for_resubmit

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


#: How many of its own newest submits a store remembers the queue of (about 100 bytes each).
SUBMITTED_MEMORY = 10_000
#: Most unlocated ids a look-up searches every queue's space for (on a Redis Cluster, where a
#: failover can lose a locator entry): an id no queue holds costs one EXISTS per known queue.
LOCATOR_SEARCH_MOST = 100
#: Seconds after which a submitting store records a queue in the global queue set again (one
#: SADD per queue per interval): a write a failover lost is made good within that time.
QUEUE_RECORD_SECONDS = 1.0


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _by_space(items: Iterable[tuple[int, Space]]) -> dict[Space, list[int]]:
    """Positions grouped by key space (a script call never spans two: a cluster routes it to one slot)."""
    out: dict[Space, list[int]] = {}
    for i, space in items:
        out.setdefault(space, []).append(i)
    return out


class _GroupCommit:
    """Group commit for single submits: while one script call is on its way, the submits that
    arrive wait and go together in the next (up to ``most`` a call). A submit that finds nothing
    on its way is sent at once, by its own caller: a lone submitter pays no extra latency.
    """

    def __init__(
        self,
        send: Callable[[Sequence[NewTask], RequestKey | None], Awaitable[list[SubmitOutcome]]],
        most: int = 500,
    ) -> None:
        self._send = send
        self._most = most
        self._waiting: list[tuple[NewTask, asyncio.Future[SubmitOutcome]]] = []
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, task: NewTask) -> SubmitOutcome:
        if not self._busy:
            self._busy = True
            try:
                return (await self._send([task], None))[0]
            finally:
                self._release()
        future: asyncio.Future[SubmitOutcome] = asyncio.get_running_loop().create_future()
        entry = (task, future)
        self._waiting.append(entry)
        try:
            return await future
        except asyncio.CancelledError:
            if entry in self._waiting:  # not sent yet: it is not submitted at all
                self._waiting.remove(entry)
            raise

    def _release(self) -> None:
        """The call on its way has ended: send what waits (in a task of its own), or go idle."""
        if self._waiting:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
                try:
                    outcomes = await self._send([task for task, _ in batch], None)
                except Exception as exc:  # every waiter of the call hears why it failed
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:
                    self._waiting = batch + self._waiting
                    raise
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            # Stopped (the loop closing): whoever still waits is told so rather than left hanging.
            for _, future in self._waiting:
                future.cancel()
            self._waiting = []
            self._busy = False
            self._drainer = None


class TaskStore:
    """All reads and writes of task state: the only door to Redis. Scripts are loaded once and
    called by EVALSHA; ``close()`` closes the connection.

    Each queue's keys live in its own key space (``keys.Keys.space``); a call that spans queues
    makes one script call per queue, pipelined (on a cluster, one batch per node, sent at once).
    A task known only by id is found through the locator (task id -> queue): one HMGET first.
    """

    def __init__(
        self, redis: Redis, prefix: str = DEFAULT_PREFIX, audit_max_events: int = DEFAULT_AUDIT_MAX_EVENTS
    ) -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self._scripts = Scripts(redis, prefix, audit_max_events)
        #: On a cluster a script touches one slot; on one node the submit call also writes the
        #: locator (one call, atomic with the task), so single-Redis users pay no extra command.
        self.cluster = is_cluster(redis)
        #: Queue -> when (monotonic) this process last recorded it in the global queue set (never
        #: pruned). Recorded again after QUEUE_RECORD_SECONDS: a failover can lose the write (the
        #: set lives on one shard, replicated asynchronously), and lease recovery, stall detection,
        #: pruning and the listings find a queue's tasks through it.
        self._registered_queues: dict[str, float] = {}
        #: id -> queue of the tasks this process claimed and has not finished (a worker's renewals
        #: and outcomes then need no look-up); entries leave at finish or when the lease is lost.
        self._held: dict[str, str] = {}
        #: id -> queue of the last SUBMITTED_MEMORY tasks this process created under ids it made
        #: (``new_task_id``: never another task's), so reading one back (``client.wait``, a
        #: status request after a submit) needs no locator look-up. Oldest first: an OrderedDict,
        #: whose oldest entry goes in O(1) (a dict's first key after many deletions from its front
        #: takes a scan: ~5 us a submit once the memory is full).
        self._submitted: OrderedDict[str, str] = OrderedDict()
        self._submits = _GroupCommit(self._submit_chunk)

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

    async def locate(self, task_ids: Sequence[str]) -> dict[str, str]:
        """The queue of each of these tasks that exists (by the locator; tasks this process holds
        need no round trip)."""
        held, submitted = self._held, self._submitted
        found = {i: held.get(i) or submitted[i] for i in task_ids if i in held or i in submitted}
        missing = [i for i in dict.fromkeys(task_ids) if i not in found]
        if missing:
            raw: Any = await self.redis.hmget(self.keys.locator, missing)  # type: ignore[misc,unused-ignore]
            found.update((i, _s(q)) for i, q in zip(missing, raw, strict=True) if q is not None)
            unlocated = [i for i in missing if i not in found]
            if self.cluster and 0 < len(unlocated) <= LOCATOR_SEARCH_MOST:
                found.update(await self._search_spaces(unlocated))
        return found

    async def _search_spaces(self, task_ids: Sequence[str]) -> dict[str, str]:
        """The queue of each of ``task_ids`` that the locator does not name but whose record is in
        a known queue's space, looked up there (one pipeline) and written back to the locator.

        On a Redis Cluster the locator lives on another shard than a task, written beside its
        submit: a failover of the locator's shard can lose the entry while the task stays (and
        runs) on its own. On one Redis (or Sentinel) the two are written in one script call, on
        one node, so they are kept or lost together and this is never needed.
        """
        queues = await self.known_queues()
        if not queues:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        pairs = [(task_id, queue) for task_id in task_ids for queue in queues]
        for task_id, queue in pairs:
            pipe.exists(self.keys.space(queue).task(task_id))
        hits = {task_id: queue for (task_id, queue), n in zip(pairs, await pipe.execute(), strict=True) if n}
        if hits:
            entries: Any = hits  # redis-py's mapping type is invariant in its keys
            await self.redis.hset(self.keys.locator, mapping=entries)  # type: ignore[misc,unused-ignore]
        return hits

    async def _spaces_of(self, task_ids: Sequence[str]) -> tuple[dict[Space, list[int]], list[int]]:
        """Positions of ``task_ids`` grouped by their tasks' key spaces, and those of unknown ids."""
        where = await self.locate(task_ids)
        unknown = [i for i, task_id in enumerate(task_ids) if task_id not in where]
        known = ((i, self.keys.space(where[t])) for i, t in enumerate(task_ids) if t in where)
        return _by_space(known), unknown

    async def all_queue_keys(self) -> list[QueueKeys]:
        """The keys of every queue that ever held a task (what cross-queue work walks)."""
        return [self.keys.queue(q) for q in await self.known_queues()]

    # -- submit -----------------------------------------------------------------------------

    async def submit(self, task: NewTask) -> SubmitOutcome:
        """Create one task and its queue (or schedule) entry atomically; 1 round trip.

        Submits made while another is on its way to Redis go together in the next script call
        (each still atomic on its own, answered as if alone), so many concurrent submitters share
        round trips; a lone submit is sent at once. A task with an Idempotency-Key or a chosen id
        is sent alone (its conflict must not refuse its neighbours).

        Raises ``IdempotencyConflictError`` (writing nothing) when its Idempotency-Key was used
        for a request with another fingerprint.
        """
        if task.idempotency_key or not is_fresh_id(task.id):
            return (await self.submit_many([task]))[0]
        return await self._submits.submit(task)

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
        """One submit call per queue of ``part``, pipelined with the locator entries (written
        first, HSETNX: an id another queue already holds is answered as that task, unwritten)."""
        answered = await self._ids_held_elsewhere(part)
        by_queue: dict[str, list[int]] = {}
        for i, task in enumerate(part):
            if i not in answered:
                by_queue.setdefault(task.queue, []).append(i)
        keyed = request is not None or any(t.idempotency_key for t in part)
        calls = []
        for queue, positions in by_queue.items():
            q = self.keys.queue(queue)
            args = [
                pack_for_lua([submit_row(part[i]) for i in positions]),
                request.key if request else "",
                request.fingerprint if request else "",
                "1" if keyed else "0",
            ]
            calls.append(
                Call("submit", q.space, [q.ready] if self.cluster else [q.ready, self.keys.locator], args)
            )
        now = time.monotonic()
        recorded = self._registered_queues
        unregistered = [q for q in by_queue if now - recorded.get(q, -math.inf) >= QUEUE_RECORD_SECONDS]
        locator: dict[str, str] = {}
        if self.cluster:
            locator = {part[i].id: queue for queue, positions in by_queue.items() for i in positions}

        def before(pipe: Any) -> int:
            # The global queue set and the locator are not in the queue's space: written beside the
            # submit calls, first (a locator entry whose task was never written finds nothing).
            if unregistered:
                pipe.sadd(self.keys.queues, *unregistered)
            if locator:
                pipe.hset(self.keys.locator, mapping=locator)
            return int(bool(unregistered)) + int(bool(locator))

        plain = int(bool(unregistered)) + int(bool(locator))
        if request is not None and len(calls) > 1:
            # A bulk request's own key is checked by its first queue's call, alone: a conflict there
            # refuses the request before any other queue is written.
            first = await self._scripts.run_all(calls[:1], before if plain else None)
            replies = first + (
                await self._scripts.run_all(calls[1:])
                if _s(first[plain][0][0]) != SubmitKind.CONFLICT
                else []
            )
        else:
            replies = await self._scripts.run_all(calls, before if plain else None) if calls else []
        recorded.update(dict.fromkeys(unregistered, now))
        for positions, reply in zip(by_queue.values(), replies[plain:], strict=False):
            for i, row in zip(positions, reply, strict=True):
                answered[i] = row
        for i in range(len(part)):  # the rows of queues not written after a conflict
            answered.setdefault(i, [SubmitKind.CONFLICT.value, "", "", "0", ""])
        rows = [answered[i] for i in range(len(part))]
        # An Idempotency-Key that named an earlier task leaves the new id's locator entry unused.
        unused = [t.id for t, row in zip(part, rows, strict=True) if t.id in locator and _s(row[1]) != t.id]
        if unused:
            await self.redis.hdel(self.keys.locator, *unused)  # type: ignore[misc,unused-ignore]
        outcomes = []
        conflicts = []
        for task, (kind, task_id, status, submitted_at, reason) in zip(part, rows, strict=True):
            if _s(kind) == SubmitKind.CONFLICT:
                if task_id:
                    conflicts.append(f"{task.idempotency_key!r} (task {_s(task_id)})")
                continue
            if _s(kind) == SubmitKind.NEW and is_fresh_id(task.id):
                self._remember_submitted(task.id, task.queue)
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

    def _remember_submitted(self, task_id: str, queue: str) -> None:
        submitted = self._submitted
        submitted[task_id] = queue
        if len(submitted) > SUBMITTED_MEMORY:
            submitted.popitem(last=False)

    async def _ids_held_elsewhere(self, part: Sequence[NewTask]) -> dict[int, Any]:
        """Submit rows (``SUBMIT_EXISTING``) for the tasks of ``part`` whose id the locator gives to
        another queue: a task id names one task across every queue. Ids made by ``new_task_id`` are
        never taken, so this costs a round trip only for ids a submitter chose."""
        chosen = [i for i, t in enumerate(part) if not is_fresh_id(t.id)]
        if not chosen:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for i in chosen:
            pipe.hsetnx(self.keys.locator, part[i].id, part[i].queue)
            pipe.hget(self.keys.locator, part[i].id)
        replies = await pipe.execute()
        elsewhere = {
            i: _s(owner)
            for i, owner in zip(chosen, replies[1::2], strict=True)
            if owner is not None and _s(owner) != part[i].queue
        }
        if not elsewhere:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for i, owner in elsewhere.items():
            pipe.hmget(self.keys.space(owner).task(part[i].id), ["status", "submitted_at"])
        rows: dict[int, Any] = {}
        for (i, _), (status, submitted_at) in zip(elsewhere.items(), await pipe.execute(), strict=True):
            if status is None:  # the locator outlived its task (pruned meanwhile): the id is free again
                continue
            rows[i] = [SubmitKind.EXISTING.value, part[i].id, _s(status), _s(submitted_at or b"0"), ""]
        return rows

    # -- worker side ------------------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        lease_seconds: float,
        max_count: int,
        queues: Sequence[QueueConfig],
        in_order: bool = False,
    ) -> ClaimResult:
        """Claim up to ``max_count`` tasks from ``queues`` under a lease.

        One claim call per queue (its own key space). By default the calls are pipelined:
        ``max_count`` is shared out over the queues in order, and what a queue could not use (it
        ran dry, or hit a limit) goes to the queues that filled their share, in another pipelined
        round. With ``in_order`` the queues are asked one after another, each for all that is
        still wanted, until the batch is full: a queue gets claims only when those before it had
        no more they could start (one round trip per queue reached). One queue: one call.
        """
        lease_ms = int(lease_seconds * 1000)
        tasks: list[ClaimedTask] = []
        now_ms = 0
        retry: int | None = None
        candidates = list(queues)
        remaining = max_count
        while remaining > 0 and candidates:
            if in_order:
                asked, unasked = [(candidates[0], remaining)], candidates[1:]
            else:
                shares = _shares(remaining, len(candidates))
                asked = [(q, n) for q, n in zip(candidates, shares, strict=True) if n > 0]
                unasked = [q for q, n in zip(candidates, shares, strict=True) if n == 0]
            calls = []
            for q, n in asked:
                k = self.keys.queue(q.name)
                args = [worker_id, lease_ms, n, q.name, q.max_concurrent or 0, q.rate_numerator or 0]
                calls.append(Call("claim", k.space, [k.ready], [*args, q.rate_window_ms]))
            replies = await self._scripts.run_all(calls)
            full = []
            for (q, n), (now, retry_in, rows) in zip(asked, replies, strict=True):
                now_ms = max(now_ms, int(now))
                if int(retry_in) >= 0:
                    retry = int(retry_in) if retry is None else min(retry, int(retry_in))
                tasks += [decode_claim(r) for r in rows]
                if len(rows) == n:
                    full.append(q)
            remaining = max_count - len(tasks)
            # Queues not asked this round (a share of 0) come before those that filled theirs; each
            # round claims something or asks fewer queues, so this ends. In order, a queue asked
            # for all that was wanted and giving it ends the claim, so "full" is never asked again.
            candidates = unasked if in_order else unasked + full
        for task in tasks:
            self._held[task.id] = task.queue
        return ClaimResult(tasks=tasks, now_ms=now_ms, retry_in_ms=retry)

    async def renew_leases(
        self, lease_seconds: float, leases: Sequence[LeaseRenewal]
    ) -> tuple[list[LeaseRenewal], list[str]]:
        """Extend the leases of one worker's tasks; 1 round trip for all of them (one call per
        queue, pipelined; a lease that names its queue needs no look-up first).

        Returns (the leases that are lost, ids whose cancellation was requested). A lease is lost
        when its task moved on or is held under another lease: it was recovered (and maybe claimed
        again, by this worker or another), so the run holding it must stop.
        """
        if not leases:
            return [], []
        unknown: list[int] = []
        if all(lease.queue for lease in leases):
            groups = _by_space((i, self.keys.space(lease.queue)) for i, lease in enumerate(leases))
        else:
            groups, unknown = await self._spaces_of([lease.id for lease in leases])
        lost = [leases[i] for i in unknown]
        cancel: list[str] = []
        calls = []
        for space, positions in groups.items():
            args: list[Any] = [int(lease_seconds * 1000)]
            for i in positions:
                lease = leases[i]
                beat = "1" if lease.heartbeat else "0"
                args += [lease.id, lease.token, beat, lease.progress, lease.progress_text]
            calls.append(Call("renew", space, [space.task(leases[i].id) for i in positions], args))
        by_token = {lease.token: lease for lease in leases}
        for space_lost, space_cancel in await self._scripts.run_all(calls) if calls else []:
            lost += [by_token[_s(x)] for x in space_lost]
            cancel += [_s(x) for x in space_cancel]
        for lease in lost:
            self._held.pop(lease.id, None)
        return lost, cancel

    async def publish_task_types(
        self, types: Sequence[tuple[str, int, StallConfig]], queues: Iterable[str]
    ) -> None:
        """Record each task type's stall config in the key space of every queue in ``queues`` (a
        worker does this for the queues it consumes), so lease recovery and the cleaner judge stalls
        and dead-lettering of the tasks in them without importing the task module."""
        spaces = {self.keys.space(q) for q in queues}
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
        groups, _unknown = await self._spaces_of([o.id for o in outcomes])
        written = [False] * len(outcomes)  # an unknown id has no record to write to
        calls = [
            Call(
                "finish",
                space,
                [space.task(outcomes[i].id) for i in positions],
                [pack_for_lua([finish_row(outcomes[i]) for i in positions])],
            )
            for space, positions in groups.items()
        ]
        for positions, reply in zip(
            groups.values(), await self._scripts.run_all(calls) if calls else [], strict=True
        ):
            for i, ok in zip(positions, reply, strict=True):
                written[i] = bool(ok)
        for outcome in outcomes:
            self._held.pop(outcome.id, None)
        return written

    # -- producer / manager side ------------------------------------------------------------

    async def cancel(self, task_ids: Sequence[str], by: str = "api") -> list[CancelOutcome]:
        """Cancel tasks; durable for running ones (flag first, then pub/sub). ``by`` says who asks
        (the event log's ``cancelled`` / ``cancel_requested`` events name it)."""
        if not task_ids:
            return []
        rows = await self._per_space("cancel", task_ids, lambda _space, ids: [by, *ids])
        return [
            CancelOutcome(
                id=_s(r[0]), outcome=CancelKind(_s(r[1])), status=_s(r[2]), queue=_s(r[3]), name=_s(r[4])
            )
            if r is not None
            else CancelOutcome(id=task_id, outcome=CancelKind.NOT_FOUND, status="", queue="", name="")
            for task_id, r in zip(task_ids, rows, strict=True)
        ]

    async def _per_space(
        self, name: str, task_ids: Sequence[str], args_of: Callable[[Space, list[str]], list[Any]]
    ) -> list[Any]:
        """Run script ``name`` once per key space of ``task_ids`` (KEYS: their records, then
        ``args_of(space, ids)``), pipelined; the per-id rows, aligned with ``task_ids`` (None for
        an id no task has)."""
        groups, _unknown = await self._spaces_of(task_ids)
        calls = []
        for space, positions in groups.items():
            ids = [task_ids[i] for i in positions]
            calls.append(Call(name, space, [space.task(i) for i in ids], args_of(space, ids)))
        out: list[Any] = [None] * len(task_ids)
        for positions, reply in zip(
            groups.values(), await self._scripts.run_all(calls) if calls else [], strict=True
        ):
            for i, row in zip(positions, reply, strict=True):
                out[i] = row
        return out

    async def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, or None (2 round trips: its queue, then its record)."""
        return (await self.fetch_tasks([task_id]))[0]

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        """The tasks with these ids that exist, in order, in 1 round trip."""
        return [t for t in await self.fetch_tasks(task_ids) if t is not None]

    async def fetch_tasks(self, task_ids: Sequence[str]) -> list[Task | None]:
        """The tasks with these ids, aligned with them (None where a record is gone); 2 round trips
        (their queues by the locator, then their records)."""
        if not task_ids:
            return []
        where = await self.locate(task_ids)
        found = [i for i in task_ids if i in where]
        records = dict(
            zip(found, await self._records([(self.keys.space(where[i]), i) for i in found]), strict=True)
        )
        return [records.get(i) for i in task_ids]

    async def fetch_in_space(self, space: Space, task_ids: Sequence[str]) -> list[Task | None]:
        """The tasks with these ids in ``space`` (found in one of its indexes), aligned with them;
        1 round trip."""
        return await self._records([(space, i) for i in task_ids])

    async def _records(self, where: Sequence[tuple[Space, str]]) -> list[Task | None]:
        if not where:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for space, task_id in where:
            pipe.hgetall(space.task(task_id))
        replies = await pipe.execute()
        return [
            _decoded(task_id, fields) if fields else None
            for (_, task_id), fields in zip(where, replies, strict=True)
        ]

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
        calls = [
            Call("queue_stats", space, [self.keys.queue(q).ready for q in names], names)
            for space, names in by_space.items()
        ]
        found: dict[str, QueueStats] = {}
        for names, (raw_now, rows) in zip(by_space.values(), await self._scripts.run_all(calls), strict=True):
            now_ms = int(raw_now)
            # The share of the previous minute that lies inside the last 60 s.
            earlier = 1 - (now_ms % 60_000) / 60_000
            for queue, row in zip(names, rows, strict=True):
                ready, scheduled, running, paused, oldest, done, failed, done_1, failed_1 = map(int, row[:9])
                blocked, external = int(row[9]), int(row[10])
                found[queue] = QueueStats(
                    queue=queue,
                    depth=ready,
                    oldest_age_ms=max(now_ms - oldest, 0) if oldest >= 0 else 0,
                    scheduled=scheduled,
                    running=running,
                    paused=bool(paused),
                    blocked=blocked,
                    external=external,
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
        """Queue, name, version and DLQ flag of each task that exists, in 2 round trips."""
        where = await self.locate(task_ids)
        found = [i for i in task_ids if i in where]
        if not found:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for task_id in found:
            pipe.hmget(
                self.keys.space(where[task_id]).task(task_id), ["queue", "name", "version", "dead_lettered"]
            )
        refs = {}
        for task_id, (queue, name, version, dead) in zip(found, await pipe.execute(), strict=True):
            if queue is not None:
                refs[task_id] = TaskRef(_s(queue), _s(name or b""), int(version or 1), dead == b"1")
        return refs

    async def record_queues(self, queues: Sequence[str]) -> None:
        """Record ``queues`` in the global queue set (as a submit does), so that what finds tasks
        through it (lease recovery, stall detection, pruning, listings) finds theirs even when no
        one submits to them (the scheduler records the queues it serves, each pass)."""
        if queues:
            await self.redis.sadd(self.keys.queues, *queues)  # type: ignore[misc,unused-ignore]
            self._registered_queues.update(dict.fromkeys(queues, time.monotonic()))

    async def known_queues(self) -> list[str]:
        """Every queue name that ever held a task."""
        raw: Any = await self.redis.smembers(self.keys.queues)  # type: ignore[misc,unused-ignore]
        return sorted(_s(x) for x in raw)

    async def recover_expired_leases(self, batch: int = 500, horizon_seconds: float = 0.0) -> RecoverResult:
        """Re-queue (or stall) tasks whose worker died, judged by Redis time: their lease expired,
        or expires within ``horizon_seconds`` and was not renewed for two renewal intervals (a third
        of a lease). One call per queue, pipelined, again for the queues that filled a batch."""
        horizon_ms = int(horizon_seconds * 1000)
        requeued: list[str] = []
        stalled: list[str] = []
        cancelled: list[str] = []
        spaces = [q.space for q in await self.all_queue_keys()]
        while spaces:
            calls = [Call("recover", space, [space.inflight], [batch, horizon_ms]) for space in spaces]
            full = []
            for space, (r, s, c) in zip(spaces, await self._scripts.run_all(calls), strict=True):
                requeued += [_s(x) for x in r]
                stalled += [_s(x) for x in s]
                cancelled += [_s(x) for x in c]
                if len(r) + len(s) + len(c) >= batch:
                    full.append(space)
            spaces = full
        return RecoverResult(requeued, stalled, cancelled)

    async def stall_silent_tasks(
        self, stale_seconds: float | None, min_submitted_ms: int = 0, max_submitted_ms: int = 2**53
    ) -> list[str]:
        """Mark started tasks whose heartbeat went silent while their worker renews their lease as
        stalled; returns their ids. A dead worker's tasks are left to lease recovery."""
        stale_ms = int(stale_seconds * 1000) if stale_seconds else 0
        calls = [
            Call(
                "stall_silent",
                q.space,
                [q.space.status(TaskStatus.STARTED.value), q.space.inflight],
                [stale_ms, min_submitted_ms, max_submitted_ms],
            )
            for q in await self.all_queue_keys()
        ]
        replies = await self._scripts.run_all(calls) if calls else []
        return [_s(x) for ids in replies for x in ids]

    async def prune_terminal(self, status: TaskStatus, older_than_ms: int, batch: int = 500) -> list[str]:
        """Delete tasks that entered terminal ``status`` before ``older_than_ms``; DLQ entries stay.
        Their locator entries go after (one left by a crash in between finds nothing)."""
        if not status.is_terminal:
            raise ValueError(f"only terminal tasks are pruned, not {status.value}")
        removed: list[str] = []
        offsets = {q.space: 0 for q in await self.all_queue_keys()}
        while offsets:
            spaces = list(offsets)
            calls = [
                Call(
                    "prune",
                    space,
                    [space.status(status.value), space.dlq],
                    [status.value, older_than_ms, batch, offsets[space]],
                )
                for space in spaces
            ]
            for space, (ids, skipped) in zip(spaces, await self._scripts.run_all(calls), strict=True):
                removed += [_s(x) for x in ids]
                offsets[space] += int(skipped)
                if len(ids) + int(skipped) < batch:
                    del offsets[space]
        await self._forget_locations(removed)
        return removed

    async def _forget_locations(self, task_ids: Sequence[str]) -> None:
        for i in range(0, len(task_ids), 1000):
            await self.redis.hdel(self.keys.locator, *task_ids[i : i + 1000])  # type: ignore[misc,unused-ignore]

    async def prune_dead_letters(self, older_than_ms: int, batch: int = 500) -> list[str]:
        """Remove DLQ entries dead-lettered before ``older_than_ms``."""
        removed: list[str] = []
        spaces = [q.space for q in await self.all_queue_keys()]
        while spaces:
            calls = [Call("prune_dlq", space, [space.dlq], [older_than_ms, batch]) for space in spaces]
            full = []
            for space, ids in zip(spaces, await self._scripts.run_all(calls), strict=True):
                removed += [_s(x) for x in ids]
                if len(ids) >= batch:
                    full.append(space)
            spaces = full
        return removed

    async def prune_rate_limits(self, older_than_ms: int) -> int:
        """Remove rate-limit start records older than ``older_than_ms``, of every queue ever used;
        returns how many."""
        calls = [Call("prune_rate", q.space, [q.rate], [older_than_ms]) for q in await self.all_queue_keys()]
        return sum(int(n) for n in await self._scripts.run_all(calls)) if calls else 0

    async def redis_time_ms(self) -> int:
        """Redis's clock in epoch milliseconds (all lease and age decisions use it)."""
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def ping(self) -> bool:
        """Whether Redis answers; raises the client's connection error when it does not."""
        return bool(await self.redis.ping())  # type: ignore[misc,unused-ignore]

    async def out_of_memory(self) -> str | None:
        """Why Redis refuses writes for memory (``INFO memory``: ``used_memory``, less what Redis
        does not count against the limit, over ``maxmemory``), on any master of a cluster; None when
        it does not, or when Redis will not say (``INFO`` renamed away, or not in the ACL user's
        commands). Redis then refuses new work, while leases are still renewed (``OOM_RULES``)."""
        try:
            if self.cluster:
                per_node = await self.redis.info("memory", target_nodes="primaries")
                infos: list[tuple[str, Mapping[str, Any]]] = list(per_node.items())
            else:
                infos = [("", await self.redis.info("memory"))]
        except ResponseError as exc:
            log.debug("cannot read INFO memory: %s", exc)
            return None
        for node, info in infos:
            used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
            if limit and used - int(info.get("mem_not_counted_for_evict", 0)) > limit:
                where = f" on {node}" if node else ""
                return (f"out of memory{where}: used_memory {used} > maxmemory {limit} "
                        f"(maxmemory-policy {info.get('maxmemory_policy', '?')}); writes are refused")
        return None

    # -- dead letter queue (manager side) ---------------------------------------------------

    async def resubmit_dead_letters(
        self, task_ids: Sequence[str], reset_retry_count: bool
    ) -> list[ResubmitOutcome]:
        """Move dead-lettered tasks back to their queues (guarded on DLQ membership and status); a
        workflow node among them resumes its run downstream of it (``fresh_ids_for_resubmit``)."""
        if not task_ids:
            return []
        flag = "1" if reset_retry_count else "0"
        fresh = await fresh_ids_for_resubmit(self, task_ids)
        rows = await self._per_space(
            "dlq_resubmit", task_ids, lambda space, ids: [flag, pack_for_lua(fresh.get(space, [])), *ids]
        )
        return [
            ResubmitOutcome(id=_s(r[0]), outcome=ResubmitKind(_s(r[1])), status=_s(r[2]))
            if r is not None
            else ResubmitOutcome(id=task_id, outcome=ResubmitKind.NOT_FOUND, status="")
            for task_id, r in zip(task_ids, rows, strict=True)
        ]

    async def remove_dead_letters(self, task_ids: Sequence[str]) -> list[str]:
        """Remove DLQ entries; returns the ids that were in the DLQ. Task records stay until pruned."""
        if not task_ids:
            return []
        groups, _unknown = await self._spaces_of(task_ids)
        calls = []
        for space, positions in groups.items():
            ids = [task_ids[i] for i in positions]
            calls.append(Call("dlq_remove", space, [space.task(i) for i in ids], ids))
        replies = await self._scripts.run_all(calls) if calls else []
        removed = {_s(x) for reply in replies for x in reply}
        return [i for i in task_ids if i in removed]


def _shares(total: int, parts: int) -> list[int]:
    """``total`` split over ``parts`` in order, the first ones getting the remainder (some may get 0)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _decoded(task_id: str, fields: dict[bytes, bytes]) -> Task | None:
    # A record that cannot be decoded (damaged, or written by other means) is left out, and said
    # so, rather than failing the listing of every other task.
    try:
        return decode_task(fields)
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("task %s cannot be decoded and is left out: %r", task_id, exc)
        return None
