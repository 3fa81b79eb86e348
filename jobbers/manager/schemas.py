"""Request and response bodies of the REST API (so ``/openapi.json`` describes every route)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from jobbers.models.queue_config import NAME_PATTERN, RatePeriod
from jobbers.models.task import ErrorRecord, Task, TaskStatus

#: A ULID in Crockford base32 (either case); the API stores and answers it upper-cased.
ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"
#: Hard caps that keep one request bounded; list ``limit``s above ``MAX_PAGE`` are clamped to it.
MAX_PAGE = 1000
MAX_BULK_TASKS = 10_000
MAX_SCHEDULE_AHEAD = dt.timedelta(days=366)
MAX_TASK_NAME_LENGTH = 200

TaskId = Annotated[str, StringConstraints(pattern=ULID_PATTERN), AfterValidator(str.upper)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
TaskName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TASK_NAME_LENGTH)]


def clamp_limit(limit: int) -> int:
    """A list ``limit`` clamped to ``MAX_PAGE`` (values below 1 are refused by validation)."""
    return min(limit, MAX_PAGE)


class Message(BaseModel):
    """An error or status message (404, 409, 401, 413, 503)."""

    detail: str


# -- tasks ------------------------------------------------------------------------------------


class SubmitTask(BaseModel):
    """A task to run. Give ``run_at`` or ``delay`` (seconds) to schedule it instead of queueing it."""

    name: TaskName
    version: int = Field(default=1, ge=1, le=2**31 - 1)
    queue: Name = "default"
    params: dict[str, Any] = Field(default_factory=dict)
    id: TaskId | None = Field(
        default=None, description="client-chosen task id (ULID); resubmitting it is a no-op"
    )
    run_at: dt.datetime | None = Field(default=None, description="when to run (ISO 8601; naive means UTC)")
    delay: float | None = Field(default=None, ge=0, le=MAX_SCHEDULE_AHEAD.total_seconds())

    @model_validator(mode="after")
    def _one_schedule(self) -> SubmitTask:
        if self.run_at is not None and self.delay is not None:
            raise ValueError("give run_at or delay, not both")
        if self.run_at is not None:
            run_at = self.run_at if self.run_at.tzinfo else self.run_at.replace(tzinfo=dt.UTC)
            if run_at - dt.datetime.now(dt.UTC) > MAX_SCHEDULE_AHEAD:
                raise ValueError(f"run_at may be at most {MAX_SCHEDULE_AHEAD.days} days ahead")
            self.run_at = run_at
        return self

    def scheduled_for(self, now: dt.datetime) -> dt.datetime | None:
        """The run time asked for, if any."""
        if self.delay is not None and self.delay > 0:
            return now + dt.timedelta(seconds=self.delay)
        return self.run_at


class SubmitTasks(BaseModel):
    """Many tasks; all are validated before any is written."""

    tasks: list[SubmitTask] = Field(min_length=1, max_length=MAX_BULK_TASKS)


class TaskSubmitted(BaseModel):
    """The task a submission created (or, for a repeated id or Idempotency-Key, found)."""

    id: str
    name: str
    status: TaskStatus
    queue: str
    submitted_at: dt.datetime


class TasksSubmitted(BaseModel):
    """The tasks of a bulk submission, in request order."""

    tasks: list[TaskSubmitted]
    created: int = Field(description="how many were new (the rest already existed)")


class TaskList(BaseModel):
    """A page of tasks. Pass ``next_cursor`` as ``cursor`` for the next page; None means no more."""

    tasks: list[Task]
    next_cursor: str | None
    total: int | None = Field(description="tasks in the listing, when known without a scan (no filters)")
    limit: int


class ActiveTask(BaseModel):
    """A started task: who runs it and for how long."""

    id: str
    name: str
    version: int
    queue: str
    worker_id: str | None
    started_at: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    running_seconds: float
    retry_attempt: int
    cancel_requested: bool


class ActiveTaskList(BaseModel):
    tasks: list[ActiveTask]
    next_cursor: str | None
    total: int | None
    limit: int


class ScheduledTask(BaseModel):
    """A task waiting for its run time (a delayed submission or a retry delay)."""

    id: str
    name: str
    version: int
    queue: str
    run_at: dt.datetime
    submitted_at: dt.datetime | None
    retry_attempt: int
    error: str | None


class ScheduledTaskList(BaseModel):
    tasks: list[ScheduledTask]
    next_cursor: str | None
    total: int
    limit: int


class CancelTasks(BaseModel):
    task_ids: list[TaskId] = Field(min_length=1, max_length=MAX_PAGE)


class CancelResult(BaseModel):
    """``cancelled`` (at once), ``requested`` (running; its worker stops it), ``not_found``, ``conflict``."""

    id: str
    outcome: str
    status: str = Field(description="the task's status after the request ('' when not found)")


class CancelResults(BaseModel):
    results: list[CancelResult]


# -- dead letter queue ------------------------------------------------------------------------


class DeadLetter(BaseModel):
    """A dead-lettered task with its last error and full error history."""

    id: str
    name: str
    version: int
    queue: str
    params: dict[str, Any]
    status: TaskStatus
    error: str | None
    retry_attempt: int
    submitted_at: dt.datetime | None
    completed_at: dt.datetime | None
    dead_lettered_at: dt.datetime
    errors: list[ErrorRecord]


class DeadLetterList(BaseModel):
    tasks: list[DeadLetter]
    next_cursor: str | None
    total: int | None
    limit: int


class DeadLetterHistory(BaseModel):
    """Every failed attempt of a dead-lettered task, oldest first."""

    id: str
    name: str
    version: int
    queue: str
    status: TaskStatus
    history: list[ErrorRecord]


class ResubmitDeadLetters(BaseModel):
    """Which dead letters to resubmit: ``task_ids``, or the first ``limit`` matching the filters."""

    task_ids: list[TaskId] | None = Field(default=None, max_length=MAX_PAGE)
    queue: Name | None = None
    task_name: TaskName | None = None
    reset_retry_count: bool = False
    limit: int = Field(default=100, ge=1, description=f"clamped to {MAX_PAGE}")


class ResubmitResult(BaseModel):
    """``resubmitted``, ``not_found`` (not in the DLQ), ``conflict`` (not failed or stalled), or
    ``queue_not_found`` (its queue was deleted; the task stays in the DLQ)."""

    id: str
    outcome: str
    status: str


class ResubmitResults(BaseModel):
    resubmitted: int
    results: list[ResubmitResult]


class DeadLettersRemoved(BaseModel):
    removed: int
    task_ids: list[str]


# -- queues, roles, catalogue, health -----------------------------------------------------------


class QueueSettings(BaseModel):
    """A queue's limits (the body of PUT /queues/{name}; ``name``, if given, must match the path)."""

    name: Name | None = None
    max_concurrent: int | None = Field(default=None, ge=1, le=1_000_000)
    rate_numerator: int | None = Field(default=None, ge=1, le=1_000_000_000)
    rate_denominator: int = Field(default=1, ge=1, le=1_000_000)
    rate_period: RatePeriod = RatePeriod.SECOND


class RoleQueues(BaseModel):
    """A role's queue list (the body of PUT /roles/{name})."""

    queues: list[Name] = Field(default_factory=list, max_length=MAX_PAGE)


class TaskType(BaseModel):
    """A registered task: what may be submitted as ``name``/``version``/``params``."""

    name: str
    version: int
    params: list[str]
    required_params: list[str]
    accepts_any_params: bool = Field(description="the function takes **kwargs")
    max_retries: int
    timeout: float | None
    dead_letter_policy: str


# -- overview (admin UI) ------------------------------------------------------------------------


class QueueOverview(BaseModel):
    """One queue's tasks now, and its terminal outcomes over the throughput window."""

    name: str
    configured: bool = Field(description="false for a deleted queue that still holds task records")
    max_concurrent: int | None
    ready: int = Field(description="submitted, waiting for a worker")
    running: int
    scheduled: int = Field(description="waiting for their run time (delayed or retry-delayed)")
    dead_lettered: int
    recent: dict[str, int] = Field(description="terminal outcomes in the throughput window, by status")


class ThroughputMinute(BaseModel):
    """Tasks that reached a terminal status in one minute (every queue), by status."""

    minute: dt.datetime
    counts: dict[str, int]
    total: int


class WorkerInfo(BaseModel):
    """A live worker, as of its last report (every ``WORKER_REFRESH_INTERVAL``)."""

    id: str
    role: str
    queues: list[str]
    running: int
    slots: int
    processed: int
    started_at: dt.datetime
    last_seen_at: dt.datetime


class Stats(BaseModel):
    """The platform at a glance: what the admin UI's overview shows."""

    now: dt.datetime = Field(description="Redis time the figures were read at")
    queues: list[QueueOverview]
    statuses: dict[str, int] = Field(description="tasks per status (every status but unsubmitted)")
    dead_lettered: int
    throughput: list[ThroughputMinute] = Field(description="one entry per minute, oldest first")
    workers_alive: int
    workers: list[WorkerInfo]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    """``ready`` when Redis and SQL both answer; otherwise the failing side says why."""

    status: str
    redis: str
    sql: str
