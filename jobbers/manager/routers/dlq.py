"""The dead letter queue: list, inspect a task's failure history, resubmit, remove."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Query, Response

from jobbers.errors import TaskNotFoundError
from jobbers.manager.deps import Services, ServicesDep
from jobbers.manager.params import (
    NOT_FOUND,
    UNAVAILABLE,
    CursorQuery,
    LimitQuery,
    QueueQuery,
    TaskIdPath,
    TaskNameQuery,
)
from jobbers.manager.rendering import item_response, page_response
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import (
    MAX_PAGE,
    DeadLetter,
    DeadLetterHistory,
    DeadLetterList,
    DeadLettersRemoved,
    ResubmitDeadLetters,
    ResubmitResult,
    ResubmitResults,
    TaskId,
    clamp_limit,
)
from jobbers.models.task import Task, TaskStatus
from jobbers.state.queries import TaskFilter

log = logging.getLogger(__name__)

router = APIRouter(tags=["dead letter queue"], route_class=StrictJSONRoute)


async def _matching_dead_letters(services: Services, filters: TaskFilter, limit: int) -> list[Task]:
    """The first ``limit`` dead letters matching ``filters``, oldest first (following page cursors)."""
    found: list[Task] = []
    cursor: str | None = None
    while len(found) < limit:
        page = await services.queries.list_dead_letters(filters, limit - len(found), cursor)
        found += [item.task for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    return found


@router.get("/dead-letter-queue", response_model=DeadLetterList, responses=UNAVAILABLE)
async def list_dead_letters(
    services: ServicesDep,
    queue: QueueQuery = None,
    task_name: TaskNameQuery = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Response:
    """Dead-lettered tasks, oldest first, with their last error and error history."""
    limit = clamp_limit(limit)
    page = await services.queries.list_dead_letters(TaskFilter(queue, task_name), limit, cursor)
    tasks = [
        DeadLetter(
            id=t.id,
            name=t.name,
            version=t.version,
            queue=t.queue,
            params=t.params,
            status=t.status,
            error=t.error,
            retry_attempt=t.retry_attempt,
            submitted_at=t.submitted_at,
            completed_at=t.completed_at,
            dead_lettered_at=dt.datetime.fromtimestamp(item.score_ms / 1000, tz=dt.UTC),
            errors=t.errors,
        )
        for item in page.items
        for t in (item.task,)
    ]
    return page_response(tasks, next_cursor=page.next_cursor, total=page.total, limit=limit)


@router.get(
    "/dead-letter-queue/{task_id}/history",
    response_model=DeadLetterHistory,
    responses={**NOT_FOUND, **UNAVAILABLE},
)
async def dead_letter_history(task_id: TaskIdPath, services: ServicesDep) -> Response:
    """Every failed attempt of a dead-lettered task: when, the exception type and message, the attempt."""
    task = await services.store.get_task(task_id.upper())
    if task is None or not task.dead_lettered:
        raise TaskNotFoundError(f"task {task_id} is not in the dead letter queue")
    return item_response(
        DeadLetterHistory(
            id=task.id,
            name=task.name,
            version=task.version,
            queue=task.queue,
            status=task.status,
            history=task.errors,
        )
    )


@router.post("/dead-letter-queue/resubmit", responses=UNAVAILABLE)
async def resubmit_dead_letters(body: ResubmitDeadLetters, services: ServicesDep) -> ResubmitResults:
    """Put dead letters back on their queues: the ``task_ids`` given, or the first ``limit`` matching
    ``queue``/``task_name``. A task whose queue was deleted since stays (``queue_not_found``)."""
    if body.task_ids is not None:
        ids = list(dict.fromkeys(body.task_ids))
        tasks = {t.id: t for t in await services.store.get_tasks(ids)}
    else:
        found = await _matching_dead_letters(
            services, TaskFilter(body.queue, body.task_name), clamp_limit(body.limit)
        )
        ids = [t.id for t in found]
        tasks = {t.id: t for t in found}
    results: dict[str, ResubmitResult] = {}
    for task_id in ids:
        task = tasks.get(task_id)
        if task is not None and not await services.queues.exists(task.queue):
            results[task_id] = ResubmitResult(id=task_id, outcome="queue_not_found", status=task.status)
    outcomes = await services.store.resubmit_dead_letters(
        [i for i in ids if i not in results], body.reset_retry_count
    )
    for o in outcomes:
        status = TaskStatus(o.status) if o.status else None  # '' for an unknown id
        results[o.id] = ResubmitResult(id=o.id, outcome=o.outcome, status=status)
    resubmitted = [o.id for o in outcomes if o.outcome == "resubmitted"]
    if resubmitted:
        log.info("resubmitted %d dead letters: %s", len(resubmitted), " ".join(resubmitted))
    return ResubmitResults(resubmitted=len(resubmitted), results=[results[i] for i in ids])


@router.delete("/dead-letter-queue", responses=UNAVAILABLE)
async def remove_dead_letters(
    services: ServicesDep,
    task_ids: Annotated[list[TaskId] | None, Query(max_length=MAX_PAGE, description="repeatable")] = None,
    queue: QueueQuery = None,
    task_name: TaskNameQuery = None,
    limit: LimitQuery = 100,
) -> DeadLettersRemoved:
    """Remove DLQ entries: the ``task_ids`` given, or the first ``limit`` matching ``queue``/``task_name``.

    The task records stay (``GET /task-status/{id}`` still works) until the cleaner prunes them.
    """
    if task_ids is not None:
        ids = list(dict.fromkeys(task_ids))
    else:
        found = await _matching_dead_letters(services, TaskFilter(queue, task_name), clamp_limit(limit))
        ids = [t.id for t in found]
    removed = await services.store.remove_dead_letters(ids)
    if removed:
        log.info("removed %d dead letters: %s", len(removed), " ".join(removed))
    return DeadLettersRemoved(removed=len(removed), task_ids=removed)
