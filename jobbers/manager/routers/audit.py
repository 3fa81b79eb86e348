"""The event log: a task's own events, the audit log across queues, and its summary.

Every event is written by the Lua script call that made it happen (``jobbers.state.events``).
These routes refuse a query parameter they do not take (422 naming it), so a misspelt filter
(``corelation_id``) is an error rather than an answer about every task.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

from jobbers.errors import TaskNotFoundError
from jobbers.manager.audit_schemas import AuditLog, AuditSummaryView, TaskEvents, TaskNameCounts
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
from jobbers.manager.rendering import item_response
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import clamp_limit
from jobbers.models.event import EventKind
from jobbers.models.task import MAX_CORRELATION_ID
from jobbers.state.events import AuditQuery

router = APIRouter(tags=["audit"], route_class=StrictJSONRoute)

#: The window of ``/audit-log/summary`` when ``since`` is not given: the day before ``until``.
DEFAULT_SUMMARY_WINDOW = dt.timedelta(days=1)


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _iso_only(value: object) -> object:
    """A time in the query is ISO 8601; a bare number (which pydantic would read as epoch
    seconds, against the schema's ``date-time``) is refused."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("an ISO 8601 date or time is expected (e.g. 2026-12-03T10:00:00Z), not a number")
    return value


IsoTime = Annotated[dt.datetime, BeforeValidator(_iso_only)]
SinceQuery = Annotated[
    IsoTime | None, Query(description="only events at or after this time (ISO 8601; UTC if no offset)")
]
UntilQuery = Annotated[
    IsoTime | None, Query(description="only events before this time (ISO 8601; UTC if no offset)")
]
CorrelationQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_CORRELATION_ID,
        description="only events of tasks with this correlation id",
    ),
]
TypeQuery = Annotated[list[EventKind] | None, Query(description="repeatable; default: every type")]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(value: dt.datetime | None, name: str) -> dt.datetime | None:
    """``value`` in UTC (naive: taken as UTC); 422 naming ``name`` for a time before 1970 (or one
    that UTC cannot hold), which no event can have."""
    if value is None:
        return None
    try:
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or utc < _EPOCH:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", name), "msg": "must be at or after 1970-01-01T00:00Z"}]
        )
    return utc


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _check_window(since: dt.datetime | None, until: dt.datetime | None) -> None:
    if since is not None and until is not None and until <= since:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "until"), "msg": "until must be after since"}]
        )


@dataclass(frozen=True)
class AuditFilters:
    """The filters ``/audit-log`` and its summary share; ``since`` and ``until`` in UTC."""

    since: dt.datetime | None
    until: dt.datetime | None
    correlation_id: str | None
    task_name: str | None
    queue: str | None
    types: frozenset[EventKind]

    def query(self, since: dt.datetime | None, until: dt.datetime | None) -> AuditQuery:
        """The state layer's query over the window ``since``..``until`` (422 if it is empty)."""
        _check_window(since, until)
        return AuditQuery(_ms(since), _ms(until), self.queue, self.task_name, self.correlation_id, self.types)


def audit_filters(
    since: SinceQuery = None,
    until: UntilQuery = None,
    correlation_id: CorrelationQuery = None,
    task_name: TaskNameQuery = None,
    queue: QueueQuery = None,
    type: TypeQuery = None,
) -> AuditFilters:
    return AuditFilters(
        _utc(since, "since"), _utc(until, "until"), correlation_id, task_name, queue, frozenset(type or ())
    )


AuditFiltersDep = Annotated[AuditFilters, Depends(audit_filters)]


@router.get(
    "/tasks/{task_id}/events",
    response_model=TaskEvents,
    responses={**NOT_FOUND, **UNAVAILABLE},
)
async def task_events(task_id: TaskIdPath, services: ServicesDep) -> Response:
    """Everything that happened to a task, oldest first: each transition (with its worker, attempt
    and detail), cancel requests and progress reports."""
    task_id = task_id.upper()
    events = await services.events.task_events(task_id)
    if events is None:
        raise TaskNotFoundError(f"no task {task_id}")
    return item_response(TaskEvents(task_id=task_id, events=events))


@router.get("/audit-log", response_model=AuditLog, responses=UNAVAILABLE)
async def audit_log(
    services: ServicesDep, filters: AuditFiltersDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Response:
    """The audit log: every queue's events in a window, oldest first, optionally of one correlation
    id, task name, queue or event types; paged by ``cursor``. Each queue keeps its latest
    ``AUDIT_MAX_EVENTS`` events, and the cleaner removes those older than ``AUDIT_MAX_AGE_SECONDS``."""
    limit = clamp_limit(limit)
    page = await services.events.page(filters.query(filters.since, filters.until), limit, cursor)
    return item_response(AuditLog(events=page.events, next_cursor=page.next_cursor, limit=limit))


@router.get(
    "/audit-log/summary",
    response_model=AuditSummaryView,
    responses=UNAVAILABLE,
)
async def audit_summary(services: ServicesDep, filters: AuditFiltersDep) -> AuditSummaryView:
    """How many events of each type, and per task name, happened in a window ("what did the agents
    do yesterday?"); the window is the day before ``until`` (default: now) unless ``since`` is given."""
    now = dt.datetime.fromtimestamp(await services.store.redis_time_ms() / 1000, tz=dt.UTC)
    until = filters.until or now
    since = filters.since or max(until - DEFAULT_SUMMARY_WINDOW, _EPOCH)
    summary = await services.events.summary(filters.query(since, until))
    names = sorted(summary.by_task_name.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return AuditSummaryView(
        since=since,
        until=until,
        total=summary.total,
        by_type=dict(sorted(summary.by_type.items())),
        by_task_name=[TaskNameCounts(task_name=n, total=sum(c.values()), by_type=c) for n, c in names],
    )
