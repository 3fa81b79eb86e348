"""A session's work: the tasks submitted under one correlation id that are not done yet.

An agent (or any client) that groups its tasks under a correlation id can pick up where it
stopped after a crash: the incomplete tasks are those ``submitted``, ``scheduled``, ``started``,
or ``failed`` / ``stalled`` and not resubmitted (a DLQ resubmit makes a failed task ``submitted``
again, so it is listed once, as submitted), oldest submission first.
"""

from __future__ import annotations

import datetime as dt

from jobbers.models.task import Task, TaskStatus
from jobbers.state.queries import TaskFilter, TaskQueries
from jobbers.state.walks import walk_by_status

#: The statuses of work not done yet, in lifecycle order.
INCOMPLETE_STATUSES: tuple[TaskStatus, ...] = (
    TaskStatus.SUBMITTED,
    TaskStatus.SCHEDULED,
    TaskStatus.STARTED,
    TaskStatus.FAILED,
    TaskStatus.STALLED,
)
_EPOCH = dt.datetime.fromtimestamp(0, tz=dt.UTC)


async def incomplete_tasks(queries: TaskQueries, correlation_id: str, limit: int = 1000) -> list[Task]:
    """The incomplete tasks submitted with ``correlation_id`` (at most ``limit``), oldest
    submission first (then by id)."""
    filters = TaskFilter(correlation_id=correlation_id)
    found: dict[str, Task] = {}
    async for item in walk_by_status(queries, INCOMPLETE_STATUSES, filters):
        found.setdefault(item.task.id, item.task)
    ordered = sorted(found.values(), key=lambda t: (t.submitted_at or _EPOCH, t.id))
    return ordered[:limit]
