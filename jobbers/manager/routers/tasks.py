"""Tasks: submit (one or many), inspect, list, cancel; and the catalogue of registered task types."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from jobbers import telemetry
from jobbers.errors import TaskConflictError, TaskNotFoundError
from jobbers.manager.deps import ServicesDep
from jobbers.manager.direct_routes import DirectRoute
from jobbers.manager.params import (
    CONFLICT,
    NOT_FOUND,
    UNAVAILABLE,
    CursorQuery,
    IdempotencyKey,
    LimitQuery,
    QueueQuery,
    TaskIdPath,
    TaskNameQuery,
    TraceParent,
    task_links,
)
from jobbers.manager.rendering import (
    SSE,
    item_response,
    page_response,
    sse_event,
    submitted_page_response,
    submitted_response,
)
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import (
    ActiveTask,
    ActiveTaskList,
    CancelResult,
    CancelResults,
    CancelTasks,
    ScheduledTask,
    ScheduledTaskList,
    SubmitTask,
    SubmitTasks,
    TaskList,
    TasksSubmitted,
    TaskSubmitted,
    TaskType,
    TaskView,
    clamp_limit,
)
from jobbers.manager.submission import build_tasks, bulk_request_key
from jobbers.models.task import LISTED_STATUSES, MAX_CORRELATION_ID, Task, TaskStatus
from jobbers.registry import registered_tasks, task_params
from jobbers.state.queries import TaskFilter
from jobbers.state.store import CancelOutcome, NewTask, SubmitOutcome

#: Longest long poll of ``/task-status/{id}?wait=`` (seconds).
MAX_WAIT_SECONDS = 300
#: How long a ``/task-status/{id}/stream`` stays open by default, and at most (seconds).
DEFAULT_STREAM_SECONDS = 300
MAX_STREAM_SECONDS = 3600

router = APIRouter(tags=["tasks"], route_class=StrictJSONRoute)


def _submitted(task: NewTask, outcome: SubmitOutcome, existing: Task | None) -> dict[str, Any]:
    """The fields of the ``TaskSubmitted`` answering ``task`` (rendered by ``submitted_response``)."""
    source = existing or task
    return {
        "id": outcome.id,
        "name": source.name,
        "status": outcome.status,
        "queue": source.queue,
        "submitted_at": outcome.submitted_at,
        "cancel_reason": outcome.cancel_reason,
    }


async def submit_task(
    body: SubmitTask,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
    traceparent: TraceParent = None,
) -> Response:
    """Submit a task (201); a repeated id or Idempotency-Key returns the existing task (200), but an
    Idempotency-Key used before for a different request is refused (409)."""
    with telemetry.submit_span(body.name, body.queue, parent=traceparent or ""):
        trace = telemetry.current_traceparent() or traceparent or ""
        (task,) = await build_tasks([body], services.queues, idempotency_key, trace, bulk=False)
        outcome = await services.store.submit(task)
    if outcome.created:
        return submitted_response(_submitted(task, outcome, None), 201)
    return submitted_response(_submitted(task, outcome, await services.store.get_task(outcome.id)), 200)


# The submit routes are the hot path: DirectRoute fills their arguments without FastAPI's
# per-request dependency solving (FastAPI still answers, and documents, everything else).
router.add_api_route(
    "/tasks",
    submit_task,
    methods=["POST"],
    route_class_override=DirectRoute,
    status_code=201,
    response_model=TaskSubmitted,
    responses={
        201: {"links": task_links("/id")},
        200: {"model": TaskSubmitted, "description": "the task already existed", "links": task_links("/id")},
        **CONFLICT,
        **UNAVAILABLE,
    },
)


async def submit_tasks(
    body: SubmitTasks,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
    traceparent: TraceParent = None,
) -> Response:
    """Submit many tasks in pipelined round trips; nothing is written unless every task is valid (and,
    with an Idempotency-Key used before, unless the list is the one it was used for: else 409)."""
    with telemetry.submit_span("bulk", "bulk", parent=traceparent or ""):
        trace = telemetry.current_traceparent() or traceparent or ""
        tasks = await build_tasks(body.tasks, services.queues, idempotency_key, trace, bulk=True)
        outcomes = await services.store.submit_many(tasks, request=bulk_request_key(tasks, idempotency_key))
    existing_ids = [o.id for o in outcomes if not o.created]
    existing = {t.id: t for t in await services.store.get_tasks(existing_ids)} if existing_ids else {}
    created = len(outcomes) - len(existing_ids)
    items = [_submitted(t, o, existing.get(o.id)) for t, o in zip(tasks, outcomes, strict=True)]
    return submitted_page_response(items, created, 201 if created else 200)


router.add_api_route(
    "/tasks/bulk",
    submit_tasks,
    methods=["POST"],
    route_class_override=DirectRoute,
    status_code=201,
    response_model=TasksSubmitted,
    responses={
        201: {"links": task_links("/tasks/0/id")},
        200: {"model": TasksSubmitted, "description": "every task already existed"},
        **CONFLICT,
        **UNAVAILABLE,
    },
)


@router.get("/task-status/{task_id}", response_model=TaskView, responses={**NOT_FOUND, **UNAVAILABLE})
async def task_status(
    task_id: TaskIdPath,
    services: ServicesDep,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_WAIT_SECONDS,
            description="answer once the task is terminal, or after this many seconds (as it is then)",
        ),
    ] = None,
) -> Response:
    """Everything known about a task: status, timings, params, result, errors and their history.
    With ``wait``, a long poll: the answer comes as soon as the task ends (woken by its
    transition, not by polling), or when ``wait`` seconds have passed."""
    if wait is None:
        task = await services.store.get_task(task_id.upper())
    else:
        task = await services.waits.until_terminal(task_id.upper(), wait)
    if task is None:
        raise TaskNotFoundError(f"no task {task_id}")
    return item_response(task)


@router.get(
    "/task-status/{task_id}/stream",
    responses={
        200: {"description": "server-sent events, one `task` event per change", "content": {SSE: {}}},
        **NOT_FOUND,
        **UNAVAILABLE,
    },
)
async def task_stream(
    task_id: TaskIdPath,
    services: ServicesDep,
    wait: Annotated[
        float, Query(gt=0, le=MAX_STREAM_SECONDS, description="close the stream after this many seconds")
    ] = DEFAULT_STREAM_SECONDS,
) -> StreamingResponse:
    """A server-sent event stream of one task: a ``task`` event with its record now, then one at
    each status change (heartbeats and progress within about a second), closed after the
    terminal record or after ``wait`` seconds."""
    task_id = task_id.upper()
    updates = services.waits.follow(task_id, wait)
    first = await anext(updates, None)
    if first is None:
        raise TaskNotFoundError(f"no task {task_id}")

    async def events() -> AsyncIterator[bytes]:
        yield sse_event(first)
        async for task in updates:
            yield sse_event(task)

    return StreamingResponse(events(), media_type=SSE, headers={"Cache-Control": "no-store"})


@router.get("/tasks", response_model=TaskList, responses=UNAVAILABLE)
@router.get("/task-list", response_model=TaskList, responses=UNAVAILABLE)
async def list_tasks(
    services: ServicesDep,
    status: Annotated[list[TaskStatus] | None, Query(description="repeatable; default: every status")] = None,
    queue: QueueQuery = None,
    task_name: TaskNameQuery = None,
    recurring_key: Annotated[
        str | None, Query(min_length=1, max_length=200, description="only tasks this recurring entry fired")
    ] = None,
    correlation_id: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_CORRELATION_ID, description="only tasks with this correlation id"),
    ] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Response:
    """Tasks by status (in lifecycle order, each oldest first), optionally of one queue, task name,
    recurring entry or correlation id."""
    statuses = list(dict.fromkeys(status)) if status else list(LISTED_STATUSES)
    limit = clamp_limit(limit)
    filters = TaskFilter(queue, task_name, recurring_key=recurring_key, correlation_id=correlation_id)
    page = await services.queries.list_by_status(statuses, filters, limit, cursor)
    # Rendered task by task (one record that cannot be shown must not break the page).
    return page_response(
        [item.task for item in page.items], next_cursor=page.next_cursor, total=page.total, limit=limit
    )


@router.get("/active-tasks", response_model=ActiveTaskList, responses=UNAVAILABLE)
async def active_tasks(
    services: ServicesDep, queue: QueueQuery = None, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Response:
    """Started tasks, longest-running first, with their worker and running time (by Redis's clock)."""
    limit = clamp_limit(limit)
    page = await services.queries.list_by_status([TaskStatus.STARTED], TaskFilter(queue), limit, cursor)
    now_ms = await services.store.redis_time_ms()
    tasks = [
        ActiveTask(
            id=t.id,
            name=t.name,
            version=t.version,
            queue=t.queue,
            worker_id=t.worker_id,
            started_at=t.started_at,
            last_heartbeat_at=t.last_heartbeat_at,
            running_seconds=max(0.0, (now_ms - t.started_at.timestamp() * 1000) / 1000)
            if t.started_at
            else 0.0,
            retry_attempt=t.retry_attempt,
            cancel_requested=t.cancel_requested,
        )
        for t in (item.task for item in page.items)
    ]
    return page_response(tasks, next_cursor=page.next_cursor, total=page.total, limit=limit)


@router.get("/scheduled-tasks", response_model=ScheduledTaskList, responses=UNAVAILABLE)
async def scheduled_tasks(
    services: ServicesDep, queue: QueueQuery = None, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Response:
    """Tasks waiting for their run time (delayed submissions and retry delays), soonest first."""
    limit = clamp_limit(limit)
    queues = [queue] if queue else await services.store.known_queues()
    page = await services.queries.list_scheduled(queues, limit, cursor)
    tasks = [
        ScheduledTask(
            id=item.task.id,
            name=item.task.name,
            version=item.task.version,
            queue=item.task.queue,
            run_at=item.task.run_at or dt.datetime.fromtimestamp(item.score_ms / 1000, tz=dt.UTC),
            submitted_at=item.task.submitted_at,
            retry_attempt=item.task.retry_attempt,
            error=item.task.error,
        )
        for item in page.items
    ]
    # The total counts every queue's scheduled tasks, as the other listings' totals do.
    total = page.total if queue is None else await services.queries.count_in_status(TaskStatus.SCHEDULED)
    return page_response(tasks, next_cursor=page.next_cursor, total=total, limit=limit)


def _cancel_result(outcome: CancelOutcome) -> CancelResult:
    status = TaskStatus(outcome.status) if outcome.status else None  # '' for an unknown id
    return CancelResult(id=outcome.id, outcome=outcome.outcome, status=status)


@router.post("/task/{task_id}/cancel", responses={**NOT_FOUND, **CONFLICT, **UNAVAILABLE})
async def cancel_task(task_id: TaskIdPath, services: ServicesDep) -> CancelResult:
    """Cancel a task: queued or scheduled ones at once; a running one is stopped by its worker."""
    (outcome,) = await services.store.cancel([task_id.upper()], by="POST /task/{id}/cancel")
    telemetry.record_cancellations([outcome])
    if outcome.outcome == "not_found":
        raise TaskNotFoundError(f"no task {task_id}")
    if outcome.outcome == "conflict":
        raise TaskConflictError(f"task {task_id} is {outcome.status} and cannot be cancelled")
    return _cancel_result(outcome)


@router.post("/tasks/cancel", responses=UNAVAILABLE)
async def cancel_tasks(body: CancelTasks, services: ServicesDep) -> CancelResults:
    """Cancel many tasks; each gets its own outcome (``not_found`` and ``conflict`` included)."""
    outcomes = await services.store.cancel(list(dict.fromkeys(body.task_ids)), by="POST /tasks/cancel")
    telemetry.record_cancellations(outcomes)
    return CancelResults(results=[_cancel_result(o) for o in outcomes])


@router.get("/task-types")
async def task_types() -> list[TaskType]:
    """Every registered task (name, version) and the parameters it takes."""
    types = []
    for config in registered_tasks():
        params = task_params(config)
        types.append(
            TaskType(
                name=config.name,
                version=config.version,
                params=params.names,
                required_params=params.required,
                accepts_any_params=params.accepts_any,
                max_retries=config.max_retries,
                timeout=config.timeout,
                dead_letter_policy=config.dead_letter_policy.value,
                external=config.external,
            )
        )
    return types
