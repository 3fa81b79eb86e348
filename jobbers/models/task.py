"""The task record and its lifecycle: statuses and the allowed-transition table."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from jobbers.models.queue_config import DEFAULT_QUEUE

#: A task's priority range: higher is claimed first within its queue (0 by default).
MIN_PRIORITY, MAX_PRIORITY = -100, 100
#: The longest correlation id a task may carry (characters).
MAX_CORRELATION_ID = 256


def check_correlation_id(value: object) -> str | None:
    """``value`` as a correlation id (``None``: none); raises ``ValueError`` for anything but a
    non-empty string of at most ``MAX_CORRELATION_ID`` characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CORRELATION_ID:
        raise ValueError(f"correlation_id must be a string of 1 to {MAX_CORRELATION_ID} characters")
    return value


def is_priority(value: object) -> bool:
    """Whether ``value`` is a valid priority (an ``int``, not a ``bool``, in the range)."""
    return isinstance(value, int) and not isinstance(value, bool) and MIN_PRIORITY <= value <= MAX_PRIORITY


class TaskStatus(StrEnum):
    """Every status a task can be in; lower-case in JSON and in Redis."""

    UNSUBMITTED = "unsubmitted"
    SUBMITTED = "submitted"
    SCHEDULED = "scheduled"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STALLED = "stalled"
    DROPPED = "dropped"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[TaskStatus] = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.STALLED, TaskStatus.DROPPED}
)

CANCELLABLE_STATUSES: frozenset[TaskStatus] = frozenset(
    {TaskStatus.SUBMITTED, TaskStatus.SCHEDULED, TaskStatus.STARTED}
)

#: The statuses a dead-lettered task can be in, and so the ones a DLQ resubmit accepts.
DEAD_LETTER_STATUSES: frozenset[TaskStatus] = frozenset({TaskStatus.FAILED, TaskStatus.STALLED})

#: Every status a stored task can be in, in lifecycle order (``unsubmitted`` is never stored):
#: the listings, the overview's counts and the admin UI's status filter use this order.
LISTED_STATUSES: tuple[TaskStatus, ...] = tuple(s for s in TaskStatus if s is not TaskStatus.UNSUBMITTED)

#: The one table of allowed transitions. The Lua scripts get it in their generated preamble and
#: refuse any move outside it (``jobbers.state.lua_gen``); each also guards on the prior status.
ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.UNSUBMITTED: frozenset({TaskStatus.SUBMITTED, TaskStatus.SCHEDULED}),
    TaskStatus.SUBMITTED: frozenset({TaskStatus.STARTED, TaskStatus.CANCELLED}),
    TaskStatus.SCHEDULED: frozenset({TaskStatus.SUBMITTED, TaskStatus.CANCELLED}),
    TaskStatus.STARTED: frozenset(
        {
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.STALLED,
            TaskStatus.DROPPED,
            TaskStatus.SCHEDULED,  # retry with a delay
            TaskStatus.SUBMITTED,  # retry without delay, resubmit on shutdown, lease recovered
        }
    ),
    # A dead-lettered task may be resubmitted from the DLQ.
    TaskStatus.FAILED: frozenset({TaskStatus.SUBMITTED}),
    TaskStatus.STALLED: frozenset({TaskStatus.SUBMITTED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
    TaskStatus.DROPPED: frozenset(),
}


def is_transition_allowed(old: TaskStatus, new: TaskStatus) -> bool:
    """Whether a task may move from ``old`` to ``new``."""
    return new in ALLOWED_TRANSITIONS[old]


class ErrorRecord(BaseModel):
    """One failed attempt: what was raised, when, and on which attempt."""

    exception_type: str
    message: str
    at: dt.datetime
    attempt: int


class TaskProgress(BaseModel):
    """The latest ``task.progress()`` report of a task (``attempt``: the attempt that made it)."""

    current: float
    total: float | None = None
    message: str | None = None
    attempt: int = 0


class Task(BaseModel):
    """A task as stored in Redis and shown by the API."""

    id: str
    name: str
    version: int = 1
    queue: str = DEFAULT_QUEUE
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    #: Groups the tasks of one session or request (``GET /tasks?correlation_id=``).
    correlation_id: str | None = None
    concurrency_key: str | None = None
    #: The concurrency key whose free slot this waiting task needs (None when not blocked).
    waiting_for: str | None = None
    #: The recurring entry that fired this task (``/recurring``), and the fire time it ran for.
    recurring_key: str | None = None
    recurring_at: dt.datetime | None = None
    workflow_id: str | None = None
    workflow_node: str | None = None
    #: Of a type no worker runs (``register_external_task``): outside processes claim it over HTTP.
    external: bool = False
    status: TaskStatus = TaskStatus.UNSUBMITTED
    submitted_at: dt.datetime | None = None
    run_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    last_heartbeat_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    retry_attempt: int = 0
    stall_count: int = 0
    result: Any = None
    error: str | None = None
    errors: list[ErrorRecord] = Field(default_factory=list)
    worker_id: str | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None
    dead_lettered: bool = False
    #: The latest ``task.progress()`` report, and when it reached Redis.
    progress: TaskProgress | None = None
    progress_at: dt.datetime | None = None
