"""Turning submit requests into validated ``NewTask``s: registry, signature and queue checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from jobbers.config_store import QueueDirectory, queue_not_found
from jobbers.errors import InvalidParamsError, JobbersError, UnknownTaskError
from jobbers.manager.errors import Loc, RequestErrors
from jobbers.manager.schemas import SubmitTask
from jobbers.registry import get_task_config, validate_params
from jobbers.state.store import NewTask
from jobbers.task_builder import build_new_task, bulk_request_key, schedule_of

# Where the routes (and app start-up) find them.
__all__ = ["QueueDirectory", "build_tasks", "bulk_request_key"]


async def build_tasks(
    requests: Sequence[SubmitTask],
    queues: QueueDirectory,
    idempotency_key: str | None,
    trace: str,
    bulk: bool,
) -> list[NewTask]:
    """Validate every request, then build its ``NewTask``; raises ``RequestErrors`` naming each problem.

    In a bulk submit item ``i`` is reported at ``body.tasks.i`` and its idempotency key is
    ``"<key>:<i>"``, so a retried bulk request returns the same tasks (``bulk_request_key`` gives
    the key of the request as a whole).
    """
    errors: list[tuple[Loc, JobbersError]] = []
    tasks: list[NewTask] = []
    now = dt.datetime.now(dt.UTC)
    # A bulk submit's tasks are mostly in a few queues: each is looked up once.
    queue_exists: dict[str, bool] = {}
    for index, request in enumerate(requests):
        at: Loc = ("body", "tasks", index) if bulk else ("body",)
        try:
            config = get_task_config(request.name, request.version)
        except UnknownTaskError as exc:
            errors.append(((*at, "name"), exc))
            continue
        exists = queue_exists.get(request.queue)
        if exists is None:
            exists = queue_exists[request.queue] = await queues.exists(request.queue)
        if not exists:
            errors.append(((*at, "queue"), queue_not_found(request.queue)))
        key = f"{idempotency_key}:{index}" if idempotency_key and bulk else idempotency_key
        try:
            validate_params(config, request.params)
            # Building formats the task's concurrency key from its params, which may lack one.
            built = build_new_task(
                config,
                request.name,
                request.params,
                version=request.version,
                queue=request.queue,
                task_id=request.id,
                run_at=request.scheduled_for(now),
                schedule=schedule_of(request.run_at, request.delay),
                idempotency_key=key,
                trace=trace,
                priority=request.priority,
                correlation_id=request.correlation_id,
            )
        except InvalidParamsError as exc:
            errors.append(((*at, "params"), exc))
            continue
        tasks.append(built)
    if errors:
        raise RequestErrors(errors)
    return tasks
