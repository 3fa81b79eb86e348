"""Answers of the event log routes (``/tasks/{id}/events``, ``/audit-log``, ``/audit-log/summary``)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from jobbers.models.event import AuditEvent, TaskEvent


class TaskEvents(BaseModel):
    """A task's events, oldest first."""

    task_id: str
    events: list[TaskEvent]


class AuditLog(BaseModel):
    """A page of the audit log, oldest first (across queues, by Redis time)."""

    events: list[AuditEvent]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")
    limit: int


class TaskNameCounts(BaseModel):
    task_name: str
    total: int
    by_type: dict[str, int]


class AuditSummaryView(BaseModel):
    """How many events of each type, and per task name, the audit log holds in a window."""

    since: dt.datetime
    until: dt.datetime
    total: int
    by_type: dict[str, int]
    by_task_name: list[TaskNameCounts] = Field(description="most events first")
