"""Turning submit requests into validated ``NewTask``s: registry, signature and queue checks."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence

from jobbers.config_store import ConfigStore
from jobbers.errors import InvalidParamsError, JobbersError, QueueNotFoundError, UnknownTaskError
from jobbers.manager.errors import Loc, RequestErrors
from jobbers.manager.schemas import SubmitTask
from jobbers.models.task_config import DeadLetterPolicy
from jobbers.registry import get_task_config, validate_params
from jobbers.state.store import NewTask, new_task_id


class QueueDirectory:
    """Which queues exist, cached for ``ttl`` seconds so a submit costs no SQL query.

    A name missing from the cache is looked up again at once, so a queue created a moment ago (on
    any manager) is found; a deleted queue may still be accepted for up to ``ttl`` seconds.
    Concurrent look-ups share one SQL query.
    """

    def __init__(self, config: ConfigStore, ttl: float = 2.0) -> None:
        self.config = config
        self.ttl = ttl
        self._names: frozenset[str] = frozenset()
        self._read_started = float("-inf")
        self._lock = asyncio.Lock()

    async def exists(self, name: str) -> bool:
        if name in self._names and time.monotonic() - self._read_started < self.ttl:
            return True
        await self.refresh()
        return name in self._names

    async def refresh(self) -> None:
        """Re-read the queue names, unless a read that began after this call was made has finished."""
        asked = time.monotonic()
        async with self._lock:
            if self._read_started >= asked:
                return
            started = time.monotonic()
            self._names = frozenset(q.name for q in await self.config.list_queues())
            self._read_started = started

    def forget(self) -> None:
        """Drop the cache (after this manager created or deleted a queue)."""
        self._read_started = float("-inf")


async def build_tasks(
    requests: Sequence[SubmitTask],
    queues: QueueDirectory,
    idempotency_key: str | None,
    trace: str,
    bulk: bool,
) -> list[NewTask]:
    """Validate every request, then build its ``NewTask``; raises ``RequestErrors`` naming each problem.

    In a bulk submit item ``i`` is reported at ``body.tasks.i`` and its idempotency key is
    ``"<key>:<i>"``, so a retried bulk request returns the same tasks.
    """
    errors: list[tuple[Loc, JobbersError]] = []
    tasks: list[NewTask] = []
    now = dt.datetime.now(dt.UTC)
    for index, request in enumerate(requests):
        at: Loc = ("body", "tasks", index) if bulk else ("body",)
        try:
            config = get_task_config(request.name, request.version)
        except UnknownTaskError as exc:
            errors.append(((*at, "name"), exc))
            continue
        try:
            validate_params(config, request.params)
        except InvalidParamsError as exc:
            errors.append(((*at, "params"), exc))
        if not await queues.exists(request.queue):
            errors.append(
                (
                    (*at, "queue"),
                    QueueNotFoundError(
                        f"queue {request.queue!r} does not exist; create it first with POST /queues"
                    ),
                )
            )
        key = f"{idempotency_key}:{index}" if idempotency_key and bulk else idempotency_key
        tasks.append(
            NewTask(
                name=request.name,
                version=request.version,
                queue=request.queue,
                params=request.params,
                id=request.id or new_task_id(),
                run_at=request.scheduled_for(now),
                idempotency_key=key,
                max_stalls=config.max_stalls,
                max_heartbeat_interval=config.max_heartbeat_interval,
                dead_letter=config.dead_letter_policy is DeadLetterPolicy.SAVE,
                trace=trace,
            )
        )
    if errors:
        raise RequestErrors(errors)
    return tasks
