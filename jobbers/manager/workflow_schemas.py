"""Request and response bodies of the workflow routes (``/workflows``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from jobbers.manager.schemas import MAX_BULK_TASKS, BodyInt, Name, Params, RequestBody, TaskId, TaskName
from jobbers.models.task import MAX_PRIORITY, MIN_PRIORITY, TaskStatus
from jobbers.models.workflow import WorkflowStatus

#: A node id: what edges, results and cancel reasons name the node by.
NodeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")]
#: A parameter name a node receives its parents' results or error in.
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]
#: Edges into one node at most (a fan-in of a 10,000-node fan-out is a fan-in of 10,000).
MAX_EDGES = MAX_BULK_TASKS


class WorkflowNodeSpec(RequestBody):
    """One node: a registered task with its params, and the nodes it waits for.

    ``after`` are its success edges (it runs once every one of those nodes completed);
    ``on_error_of`` its error edges (it runs when one of those failed or stalled after its
    retries, and ends cancelled otherwise)."""

    id: NodeId
    name: TaskName
    version: BodyInt = Field(default=1, ge=1, le=2**31 - 1)
    queue: Name = "default"
    params: Params = Field(default_factory=dict)
    priority: BodyInt | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description="by default the task's registered priority",
    )
    after: list[NodeId] = Field(default_factory=list, max_length=MAX_EDGES, description="success edges")
    on_error_of: list[NodeId] = Field(default_factory=list, max_length=MAX_EDGES, description="error edges")
    results_param: ParamName | None = Field(
        default=None, description="the param given its parents' results, {parent node id: result}"
    )
    error_param: ParamName | None = Field(
        default=None, description="the param given the failed parent's {node, task_id, status, error}"
    )


class SubmitWorkflow(RequestBody):
    """A workflow run: its nodes (in one queue or several; the run lives with its first node's) and
    their edges, checked whole before anything is written."""

    nodes: list[WorkflowNodeSpec] = Field(min_length=1, max_length=MAX_BULK_TASKS)
    name: str = Field(default="", max_length=200, description="a label for listings")
    id: TaskId | None = Field(
        default=None, description="client-chosen run id (ULID); submitting it again returns the run as it is"
    )


class WorkflowNodeView(BaseModel):
    """A node of a run: its task (an ordinary task, see ``/task-status/{task_id}``) and its edges."""

    id: str
    task_id: str
    name: str
    status: TaskStatus | None = Field(description="its task's status; null while it waits for its parents")
    after: list[str]
    on_error_of: list[str]


class WorkflowSummary(BaseModel):
    """A run without its nodes (as listed)."""

    id: str
    name: str
    queue: str
    status: WorkflowStatus
    created_at: dt.datetime | None
    completed_at: dt.datetime | None
    failed_node: str | None = Field(description="the first node that failed or stalled")


class WorkflowView(WorkflowSummary):
    """A run and every node's state."""

    nodes: list[WorkflowNodeView]


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummary]
    next_cursor: str | None
    limit: int
