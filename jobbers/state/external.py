"""External tasks in Redis: tasks of types no worker runs, claimed and ended by outside processes.

A task of a type declared with ``register_external_task`` carries ``external = "1"``. When it is
made ready (``make_ready`` in ``lua/_common.lua``: submit, retry, lease recovery, promotion, DLQ
resubmit) it goes to its queue's *external ready set* for its name (``keys.SPACE_KEYS["external"]``,
in the queue's key space) instead of the queue's ready set, so a worker's claim script never
reads it and costs nothing more. ``ext_claim`` hands such tasks out under a lease with a fencing
token, recorded in the same in-flight index as a worker's; from there every write is the worker's
own: ``renew`` (a heartbeat), ``finish`` (complete, fail, retry), lease recovery by the scheduler
when the lease expires. A ``submitted`` external task can also be ended without a claim:
``ext_take`` marks it started under a token chosen here, and the finish that follows ends it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobbers.context import progress_text
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import Task, TaskStatus
from jobbers.state.codec import pack_progress
from jobbers.state.records import LeaseRenewal, Outcome

if TYPE_CHECKING:
    from jobbers.state.store import TaskStore


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(frozen=True)
class ExternalClaim:
    """An external task handed to an outside process: its record as claimed, and its lease token."""

    task: Task
    token: str
    lease_seconds: float


@dataclass(frozen=True)
class LeaseState:
    """What a fenced write needs to know of a task first (read in one round trip)."""

    id: str
    queue: str
    name: str
    version: int
    status: TaskStatus
    external: bool
    token: str
    lease_ms: int
    retry_attempt: int
    cancel_requested: bool


def _token_base(claimer: str) -> str:
    # Random, so a token cannot be guessed from another (a worker's are counter-based, but a
    # worker never hands its tokens to anyone).
    return f"{claimer}:{secrets.token_hex(8)}"


async def claim_external(
    store: TaskStore,
    queue: QueueConfig,
    names: Sequence[str],
    count: int,
    lease_seconds: float,
    claimer: str,
) -> list[ExternalClaim]:
    """Claim up to ``count`` ready tasks named ``names`` (external types) of ``queue`` under a
    lease of ``lease_seconds``; oldest (highest priority) first. 2 round trips (the claim, then
    the claimed records)."""
    if not names or count <= 0:
        return []
    q = store.keys.queue(queue.name)
    lease_ms = max(int(lease_seconds * 1000), 1)
    keys = [q.space.external(queue.name, name) for name in dict.fromkeys(names)]
    args = [claimer, lease_ms, count, _token_base(claimer), queue.name, queue.max_concurrent or 0]
    _now, rows = await store._scripts.run("ext_claim", q.space, keys, args)
    ids = [_s(r[0]) for r in rows]
    tokens = [_s(r[1]) for r in rows]
    records = await store.fetch_in_space(q.space, ids)
    return [
        ExternalClaim(task, token, lease_ms / 1000)
        for task, token in zip(records, tokens, strict=True)
        if task is not None
    ]


_LEASE_FIELDS = ("queue", "name", "version", "status", "external", "lease", "ext_lease_ms", "retry_attempt",
                 "cancel_requested")  # fmt: skip


async def lease_state(store: TaskStore, task_id: str) -> LeaseState | None:
    """The lease and status of task ``task_id`` (None when no such task); 2 round trips."""
    where = await store.locate([task_id])
    if task_id not in where:
        return None
    raw = await store.redis.hmget(store.keys.space(where[task_id]).task(task_id), _LEASE_FIELDS)  # type: ignore[misc,unused-ignore]
    queue, name, version, status, external, token, lease_ms, attempt, cancel = raw
    if status is None:
        return None
    return LeaseState(
        id=task_id,
        queue=_s(queue or where[task_id]),
        name=_s(name or b""),
        version=int(version or 1),
        status=TaskStatus(_s(status)),
        external=external == b"1",
        token=_s(token or b""),
        lease_ms=int(lease_ms or 0),
        retry_attempt=int(attempt or 0),
        cancel_requested=cancel == b"1",
    )


async def renew_external(
    store: TaskStore,
    state: LeaseState,
    token: str,
    lease_seconds: float,
    progress: tuple[float, float | None, str | None] | None = None,
) -> tuple[bool, bool]:
    """Renew the lease of a claimed task (the worker's renewal, for one task, recording a
    heartbeat and a progress report when given); returns (renewed, cancel_requested). Not
    renewed: the token is stale, or the task is no longer started."""
    packed, text = b"", ""
    if progress is not None:
        packed, text = pack_progress(*progress, state.retry_attempt), progress_text(*progress)
    lease = LeaseRenewal(state.id, token, True, state.queue, packed, text)
    lost, cancel = await store.renew_leases(lease_seconds, [lease])
    return not lost, state.id in cancel


async def take_and_finish(store: TaskStore, state: LeaseState, claimer: str, outcome: Outcome) -> bool:
    """End a ``submitted`` external task without a claim: ``ext_take`` marks it started under
    ``outcome.token`` (a lease of a minute), then the finish writes the outcome under that token.
    False when the task was no longer a submitted external task. (Two calls, in order: a pipeline
    would reorder them when a server lacks one script. A crash in between leaves a started task
    whose lease the scheduler recovers.)"""
    space = store.keys.space(state.queue)
    record = space.task(state.id)
    if not int(await store._scripts.run("ext_take", space, [record], [claimer, 60_000, outcome.token])):
        return False
    (written,) = await store.finish([outcome])
    return written


def new_direct_token(claimer: str) -> str:
    """A lease token for a complete or fail without a claim."""
    return _token_base(claimer) + ":direct"
