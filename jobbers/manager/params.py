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
UNAVAILABLE: Responses = {503: {"model": Message, "description": "Redis or the SQL database is unreachable"}}
