"""Path, query and header parameters shared by the routers, and their documented error responses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Path, Query

from jobbers.manager.schemas import MAX_TASK_NAME_LENGTH, ULID_PATTERN, Message
from jobbers.models.queue_config import NAME_PATTERN

TaskIdPath = Annotated[str, Path(pattern=ULID_PATTERN, description="task id (ULID)")]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="queue or role name")]
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, description="a retried request with the same key returns the same task"),
]
TraceParent = Annotated[str | None, Header(max_length=128, description="W3C trace context, kept on the task")]
QueueQuery = Annotated[str | None, Query(pattern=NAME_PATTERN)]
TaskNameQuery = Annotated[str | None, Query(min_length=1, max_length=MAX_TASK_NAME_LENGTH)]
LimitQuery = Annotated[int, Query(ge=1, description="page size, clamped to 1000")]
CursorQuery = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Message}}
CONFLICT: Responses = {409: {"model": Message}}
TOO_LARGE: Responses = {413: {"model": Message, "description": "the body is over MANAGER_MAX_BODY_BYTES"}}
UNAVAILABLE: Responses = {503: {"model": Message, "description": "Redis or the SQL database is unreachable"}}


def link(path: str, method: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link from an answer to the operation ``method path``, its ``parameters`` taken
    from the answer (``"$response.body#/id"``): documents what to call next, and lets API
    fuzzers chain real ids."""
    pointer = "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method
    return {"operationRef": pointer, "parameters": parameters}


def task_links(id_pointer: str) -> dict[str, Any]:
    """Links from an answer naming a task (at ``id_pointer``) to its status and its cancel."""
    task_id = f"$response.body#{id_pointer}"
    return {
        "TaskStatus": link("/task-status/{task_id}", "get", task_id=task_id),
        "CancelTask": link("/task/{task_id}/cancel", "post", task_id=task_id),
    }


def config_links(**targets: tuple[str, str]) -> dict[str, Any]:
    """Links, by name, from an answer naming a queue or role (its ``name``) to (path, method)s."""
    name = "$response.body#/name"
    return {label: link(path, method, name=name) for label, (path, method) in targets.items()}
