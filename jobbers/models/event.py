"""The event log: what happened to a task, one event per transition (and per cancel request and
progress report), written by the same Lua script call that made it happen."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel


class EventKind(StrEnum):
    """What an event records. The Lua scripts get these names in their preamble (``EV_*``)."""

    #: Submitted ready to run (or waiting for a concurrency key's slot).
    SUBMITTED = "submitted"
    #: Submitted to run later (``run_at``).
    SCHEDULED = "scheduled"
    #: A scheduled task (delayed submit or retry delay) became ready.
    PROMOTED = "promoted"
    #: Claimed by a worker (or an outside process): ``worker_id`` and ``attempt`` say who and which.
    STARTED = "started"
    #: Its own heartbeat went silent past its ``max_heartbeat_interval``: ended ``stalled``.
    HEARTBEAT_STALE = "heartbeat_stale"
    #: An attempt failed with a retryable error; ``detail`` has the error and the delay.
    RETRIED = "retried"
    COMPLETED = "completed"
    #: ``detail`` has the error.
    FAILED = "failed"
    #: ``detail`` says by whom or why.
    CANCELLED = "cancelled"
    #: A running task was asked to stop (its worker ends it ``cancelled``).
    CANCEL_REQUESTED = "cancel_requested"
    #: Its worker died and its stall budget was spent.
    STALLED = "stalled"
    #: Its worker died (its lease expired) and it was re-queued within its stall budget.
    RECOVERED = "recovered"
    #: Put back to run again: from the dead letter queue, or by a worker shutting down.
    RESUBMITTED = "resubmitted"
    #: Ended ``dropped`` (a shutting-down worker's ``on_shutdown=drop``).
    DROPPED = "dropped"
    #: ``task.progress()`` from the running task (at most one event every few seconds per task).
    PROGRESS = "progress"


class TaskEvent(BaseModel):
    """One event of a task (``GET /tasks/{id}/events``)."""

    at: dt.datetime
    type: EventKind
    #: The task's ``retry_attempt`` then (for ``retried``: the attempt that failed).
    attempt: int
    #: The worker (or outside claimer) involved, for the events of a started task.
    worker_id: str | None = None
    detail: str | None = None


class AuditEvent(TaskEvent):
    """One event of the global audit log (``GET /audit-log``)."""

    #: Its position in its queue's log (a Redis stream id, ``<ms>-<seq>``).
    event_id: str
    task_id: str
    task_name: str
    queue: str
    correlation_id: str | None = None
