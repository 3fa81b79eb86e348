"""Workflow runs: submit a graph of tasks, list runs, inspect one, cancel one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from jobbers.errors import WorkflowConflictError, WorkflowNotFoundError
from jobbers.manager.deps import ServicesDep
from jobbers.manager.errors import Loc, RequestErrors
from jobbers.manager.params import (
    CONFLICT,
    NOT_FOUND,
    UNAVAILABLE,
    CursorQuery,
    LimitQuery,
    QueueQuery,
    TraceParent,
    link,
)
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import ULID_PATTERN, clamp_limit
from jobbers.manager.workflow_schemas import (
    SubmitWorkflow,
    WorkflowList,
    WorkflowNodeView,
    WorkflowSummary,
    WorkflowView,
)
from jobbers.models.workflow import WorkflowStatus
from jobbers.state.records import new_task_id
from jobbers.state.workflows import (
    WorkflowRun,
    cancel_workflow,
    get_workflow,
    list_workflows,
    submit_workflow,
)
from jobbers.workflow_nodes import WorkflowProblems, build_nodes, node_spec

router = APIRouter(tags=["workflows"], route_class=StrictJSONRoute)

WorkflowIdPath = Annotated[str, Path(pattern=ULID_PATTERN, description="workflow run id (ULID)")]

_RUN_LINKS = {
    "GetWorkflow": link("/workflows/{workflow_id}", "get", workflow_id="$response.body#/id"),
    "CancelWorkflow": link("/workflows/{workflow_id}/cancel", "post", workflow_id="$response.body#/id"),
}


def _summary(run: WorkflowRun) -> WorkflowSummary:
    return WorkflowSummary(
        id=run.id,
        name=run.name,
        queue=run.queue,
        status=run.status,
        created_at=run.created_at,
        completed_at=run.completed_at,
        failed_node=run.failed_node,
    )


def view(run: WorkflowRun) -> WorkflowView:
    """The API form of a run and its nodes."""
    nodes = [
        WorkflowNodeView(
            id=n.node,
            task_id=n.task_id,
            name=n.name,
            status=n.status,
            after=list(n.after),
            on_error_of=list(n.on_error_of),
        )
        for n in run.nodes
    ]
    return WorkflowView(**_summary(run).model_dump(), nodes=nodes)


async def _found(services: ServicesDep, workflow_id: str) -> WorkflowRun:
    run = await get_workflow(services.store, workflow_id)
    if run is None:
        raise WorkflowNotFoundError(f"no workflow run {workflow_id}")
    return run


@router.post(
    "/workflows",
    status_code=201,
    responses={
        201: {"links": _RUN_LINKS},
        200: {
            "model": WorkflowView,
            "description": "a run with this id existed already",
            "links": _RUN_LINKS,
        },
        **UNAVAILABLE,
    },
)
async def submit_workflow_run(
    body: SubmitWorkflow, services: ServicesDep, response: Response, traceparent: TraceParent = None
) -> WorkflowView:
    """Submit a workflow run (201): its graph and its first nodes ready, in one atomic write. Every
    node is checked first (a registered task, params that fit it, an existing queue; nodes may sit
    in several queues, the run living with its first node's) and so is the graph (no cycle, no
    edge from an unknown node); each problem is a 422 naming the node. An ``id`` submitted before
    returns that run as it is (200)."""
    workflow_id = body.id or new_task_id()
    specs = [node_spec(n.model_dump()) for n in body.nodes]
    try:
        nodes = await build_nodes(
            workflow_id,
            specs,
            require_registered=True,
            queue_exists=services.queues.exists,
            trace=traceparent or "",
        )
    except WorkflowProblems as problems:
        errors: list[tuple[Loc, Exception]] = [
            (("body", "nodes", p.index, p.field), p.error) for p in problems.problems
        ]
        raise RequestErrors(errors) from None  # type: ignore[arg-type]
    created, _ = await submit_workflow(services.store, workflow_id, body.name, nodes)
    if not created:
        response.status_code = 200
    return view(await _found(services, workflow_id))


@router.get("/workflows", responses=UNAVAILABLE)
async def list_workflow_runs(
    services: ServicesDep, queue: QueueQuery = None, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> WorkflowList:
    """Workflow runs, newest first, optionally of one queue (without their nodes)."""
    limit = clamp_limit(limit)
    page = await list_workflows(services.store, limit, cursor, queue)
    return WorkflowList(workflows=[_summary(r) for r in page.runs], next_cursor=page.next_cursor, limit=limit)


@router.get("/workflows/{workflow_id}", responses={**NOT_FOUND, **UNAVAILABLE})
async def get_workflow_run(workflow_id: WorkflowIdPath, services: ServicesDep) -> WorkflowView:
    """A run: its status and every node with its task id, status and edges."""
    return view(await _found(services, workflow_id.upper()))


@router.post("/workflows/{workflow_id}/cancel", responses={**NOT_FOUND, **CONFLICT, **UNAVAILABLE})
async def cancel_workflow_run(workflow_id: WorkflowIdPath, services: ServicesDep) -> WorkflowView:
    """Cancel every node of a running run not yet ended (running ones are asked to stop); the run
    ends ``cancelled`` once they have. A run that already ended is a 409."""
    workflow_id = workflow_id.upper()
    before = await cancel_workflow(services.store, workflow_id)
    if before is None:
        raise WorkflowNotFoundError(f"no workflow run {workflow_id}")
    if before is not WorkflowStatus.RUNNING:
        raise WorkflowConflictError(f"workflow run {workflow_id} is {before.value} and cannot be cancelled")
    return view(await _found(services, workflow_id))
