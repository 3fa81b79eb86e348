"""The dead letter queue: list, inspect a task's failure history, resubmit, remove."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Response

from jobbers import dead_letters
from jobbers.errors import TaskNotFoundError
from jobbers.manager.deps import ServicesDep
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
from jobbers.models.outcomes import ResubmitKind
from jobbers.models.task import Task
from jobbers.state.queries import TaskFilter

router = APIRouter(tags=["dead letter queue"], route_class=StrictJSONRoute)


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
    known: list[Task] = []
    if body.task_ids is not None:
        ids = list(body.task_ids)
    else:
        known = await dead_letters.matching_dead_letters(
            services.queries, TaskFilter(body.queue, body.task_name), clamp_limit(body.limit)
        )
        ids = [t.id for t in known]
    outcomes = await dead_letters.resubmit_dead_letters(
        services.store, services.queues, ids, body.reset_retry_count, known
    )
    results = [ResubmitResult(id=o.id, outcome=o.outcome, status=o.status) for o in outcomes]
    resubmitted = sum(1 for o in outcomes if o.outcome == ResubmitKind.RESUBMITTED)
    return ResubmitResults(resubmitted=resubmitted, results=results)


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
        ids = list(task_ids)
    else:
        filters = TaskFilter(queue, task_name)
        found = await dead_letters.matching_dead_letters(services.queries, filters, clamp_limit(limit))
        ids = [t.id for t in found]
    removed = await dead_letters.remove_dead_letters(services.store, ids)
    return DeadLettersRemoved(removed=len(removed), task_ids=removed)
