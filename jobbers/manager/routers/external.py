"""External tasks: outside processes claim them under a lease, heartbeat, complete and fail them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from jobbers import external_tasks
from jobbers.manager.deps import ServicesDep
from jobbers.manager.params import CONFLICT, NOT_FOUND, UNAVAILABLE, TaskIdPath, task_links
from jobbers.manager.rendering import item_response
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import (
    ClaimedTask,
    ClaimedTasks,
    ClaimTasks,
    CompleteTask,
    FailTask,
    HeartbeatAnswer,
    TaskHeartbeat,
    TaskView,
)

router = APIRouter(tags=["external tasks"], route_class=StrictJSONRoute)


@router.post("/tasks/claim", responses={200: {"links": task_links("/tasks/0/id")}, **UNAVAILABLE})
async def claim_tasks(body: ClaimTasks, services: ServicesDep) -> ClaimedTasks:
    """Hand out up to ``count`` ready tasks of external types of ``queue`` (oldest, highest
    priority first) under a lease of ``lease_seconds``, each with the token its heartbeat,
    complete and fail must carry. A lease not renewed in time is recovered as a crashed worker's."""
    claims = await external_tasks.claim_tasks(
        services.store,
        services.config,
        body.queue,
        body.names,
        body.count,
        body.lease_seconds,
        body.claimer,
    )
    return ClaimedTasks(
        tasks=[
            ClaimedTask(
                id=c.task.id,
                name=c.task.name,
                version=c.task.version,
                queue=c.task.queue,
                params=c.task.params,
                priority=c.task.priority,
                retry_attempt=c.task.retry_attempt,
                submitted_at=c.task.submitted_at,
                token=c.token,
                lease_seconds=c.lease_seconds,
            )
            for c in claims
        ]
    )


@router.post("/task/{task_id}/heartbeat", responses={**NOT_FOUND, **CONFLICT, **UNAVAILABLE})
async def heartbeat_task(task_id: TaskIdPath, body: TaskHeartbeat, services: ServicesDep) -> HeartbeatAnswer:
    """Renew a claimed task's lease; 409 when the token is not its current lease's (the lease was
    recovered, or the task ended). A task whose cancellation was requested ends ``cancelled``."""
    progress = body.progress
    report = (progress.current, progress.total, progress.message) if progress else None
    beat = await external_tasks.heartbeat_task(
        services.store, task_id.upper(), body.token, body.lease_seconds, report
    )
    return HeartbeatAnswer(
        id=task_id.upper(),
        status=beat.status,
        cancel_requested=beat.cancel_requested,
        lease_seconds=beat.lease_seconds,
    )


@router.post(
    "/task/{task_id}/complete",
    response_model=TaskView,
    responses={**NOT_FOUND, **CONFLICT, **UNAVAILABLE},
)
async def complete_task(task_id: TaskIdPath, body: CompleteTask, services: ServicesDep) -> Response:
    """End an external task ``completed`` with ``result``: under its claim's ``token``, or with no
    token while it is ``submitted``; 409 for a stale token or a task in another status."""
    task = await external_tasks.complete_task(services.store, task_id.upper(), body.result, token=body.token)
    return item_response(task)


@router.post(
    "/task/{task_id}/fail",
    response_model=TaskView,
    responses={**NOT_FOUND, **CONFLICT, **UNAVAILABLE},
)
async def fail_task(task_id: TaskIdPath, body: FailTask, services: ServicesDep) -> Response:
    """Record a failed attempt of an external task (token rules as for complete). ``retryable``:
    retried after the type's backoff while retries remain; else ``failed`` (dead-lettered under
    its dead letter policy)."""
    task = await external_tasks.fail_task(
        services.store,
        task_id.upper(),
        body.error,
        retryable=body.retryable,
        error_type=body.error_type,
        token=body.token,
    )
    return item_response(task)
