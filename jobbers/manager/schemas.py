"""Request and response bodies of the REST API (so ``/openapi.json`` describes every route).

Every request body refuses fields it does not know (422 naming the field), so a misspelt field
is never silently dropped.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from jobbers.json_values import MAX_PARAMS_DEPTH, find_problem
from jobbers.models.queue_config import NAME_PATTERN, QueueConfig, RatePeriod
from jobbers.models.task import MAX_CORRELATION_ID, MAX_PRIORITY, MIN_PRIORITY, ErrorRecord, Task, TaskStatus

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


def _storable_params(params: dict[str, Any]) -> dict[str, Any]:
    # The body parser has refused what JSON and msgpack cannot carry; this adds the params' own
    # nesting limit, so that every task can be shown again inside a listing.
    if not params or not any(isinstance(value, dict | list) for value in params.values()):
        return params  # one level deep: nothing more to check (most params, thousands per bulk submit)
    problem = find_problem(params, MAX_PARAMS_DEPTH)
    if problem is not None:
        context = {"message": problem.message, "where": problem.where("params")}
        raise PydanticCustomError(problem.kind, "{message} (at {where})", context)
    return params


Params = Annotated[
    dict[str, Any],
    AfterValidator(_storable_params),
    Field(description=f"keyword arguments of the task: JSON nested at most {MAX_PARAMS_DEPTH} levels deep"),
]


class RequestBody(BaseModel):
    """Base of every request body: unknown fields are refused (422 naming each)."""

    model_config = ConfigDict(extra="forbid")


#: Numbers and booleans in request bodies are JSON numbers and booleans, as the schema says:
#: ``"1"`` or ``1.0`` for an integer and ``0`` for a boolean are refused (query parameters, which
#: arrive as text, are converted as usual).
BodyInt = Annotated[int, Strict()]
BodyFloat = Annotated[float, Strict()]
BodyBool = Annotated[bool, Strict()]
MaxConcurrent = Annotated[BodyInt, Field(ge=1, le=1_000_000)]
RateNumerator = Annotated[BodyInt, Field(ge=1, le=1_000_000_000)]
RateDenominator = Annotated[BodyInt, Field(ge=1, le=1_000_000)]


def _omitted_field() -> Any:
    # An item that could not be rendered whole says what was left out, and why.
    return Field(
        default_factory=dict,
        description="fields left out of this answer because they cannot be shown as JSON, with the "
        "reason (the stored task is unchanged); absent when nothing was left out",
    )


class Message(BaseModel):
    """An error or status message (404, 409, 401, 413, 503)."""

    detail: str


# -- tasks ------------------------------------------------------------------------------------


class SubmitTask(RequestBody):
    """A task to run. Give ``run_at`` or ``delay`` (seconds) to schedule it instead of queueing it."""

    name: TaskName
    version: BodyInt = Field(default=1, ge=1, le=2**31 - 1)
    queue: Name = "default"
    params: Params = Field(default_factory=dict)
    id: TaskId | None = Field(
        default=None, description="client-chosen task id (ULID); resubmitting it is a no-op"
    )
    run_at: dt.datetime | None = Field(default=None, description="when to run (ISO 8601; naive means UTC)")
    delay: BodyFloat | None = Field(default=None, ge=0, le=MAX_SCHEDULE_AHEAD.total_seconds())
    priority: BodyInt | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description="higher is claimed first within the queue, equal priorities first-in first-out; "
        "by default the task's registered priority (0 unless @register_task(priority=...) says)",
    )
    correlation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CORRELATION_ID,
        description="groups the tasks of one session or request: filter with GET /tasks?correlation_id=",
    )

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


class SubmitTasks(RequestBody):
    """Many tasks; all are validated before any is written."""

    tasks: list[SubmitTask] = Field(min_length=1, max_length=MAX_BULK_TASKS)


class TaskSubmitted(BaseModel):
    """The task a submission created (or, for a repeated id or Idempotency-Key, found)."""

    id: str
    name: str
    status: TaskStatus
    queue: str
    submitted_at: dt.datetime
    cancel_reason: str | None = Field(
        default=None,
        description="set when the new task was cancelled at once: its concurrency key was at its limit "
        "(on_conflict='discard')",
    )


class TasksSubmitted(BaseModel):
    """The tasks of a bulk submission, in request order."""

    tasks: list[TaskSubmitted]
    created: int = Field(description="how many were new (the rest already existed)")


def _total_field() -> Any:
    return Field(
        description="tasks in the listed status(es), over every queue and task name: the queue and "
        "task_name filters narrow the page, not this count (per-queue counts: GET /stats)"
    )


class TaskView(Task):
    """A task as the API shows it: the stored record, and what could not be shown of it."""

    omitted: dict[str, str] = _omitted_field()


class TaskList(BaseModel):
    """A page of tasks. Pass ``next_cursor`` as ``cursor`` for the next page; None means no more."""

    tasks: list[TaskView]
    next_cursor: str | None
    total: int = _total_field()
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
    omitted: dict[str, str] = _omitted_field()


class ActiveTaskList(BaseModel):
    tasks: list[ActiveTask]
    next_cursor: str | None
    total: int = _total_field()
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
    omitted: dict[str, str] = _omitted_field()


class ScheduledTaskList(BaseModel):
    tasks: list[ScheduledTask]
    next_cursor: str | None
    total: int = _total_field()
    limit: int


class CancelTasks(RequestBody):
    task_ids: list[TaskId] = Field(min_length=1, max_length=MAX_PAGE)


class CancelResult(BaseModel):
    """``cancelled`` (at once), ``requested`` (running; its worker stops it), ``not_found``, ``conflict``."""

    id: str
    outcome: str
    status: TaskStatus | None = Field(description="the task's status after the request (null when not found)")


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
    omitted: dict[str, str] = _omitted_field()


class DeadLetterList(BaseModel):
    tasks: list[DeadLetter]
    next_cursor: str | None
    total: int = Field(
        description="dead-lettered tasks over every queue and task name: the queue and task_name "
        "filters narrow the page, not this count"
    )
    limit: int


class DeadLetterHistory(BaseModel):
    """Every failed attempt of a dead-lettered task, oldest first."""

    id: str
    name: str
    version: int
    queue: str
    status: TaskStatus
    history: list[ErrorRecord]
    omitted: dict[str, str] = _omitted_field()


class ResubmitDeadLetters(RequestBody):
    """Which dead letters to resubmit: ``task_ids``, or the first ``limit`` matching the filters."""

    task_ids: list[TaskId] | None = Field(default=None, max_length=MAX_PAGE)
    queue: Name | None = None
    task_name: TaskName | None = None
    reset_retry_count: BodyBool = False
    limit: BodyInt = Field(default=100, ge=1, description=f"clamped to {MAX_PAGE}")


class ResubmitResult(BaseModel):
    """``resubmitted``, ``not_found`` (not in the DLQ), ``conflict`` (not failed or stalled), or
    ``queue_not_found`` (its queue was deleted; the task stays in the DLQ)."""

    id: str
    outcome: str
    status: TaskStatus | None = Field(description="the task's status after the request (null when not found)")


class ResubmitResults(BaseModel):
    resubmitted: int
    results: list[ResubmitResult]


class DeadLettersRemoved(BaseModel):
    removed: int
    task_ids: list[str]


# -- queues, roles, catalogue, health -----------------------------------------------------------


class NewQueue(RequestBody):
    """A queue to create (the body of POST /queues): a concurrency limit and a rate limit of
    ``rate_numerator`` starts per (``rate_denominator`` times ``rate_period``), both optional."""

    name: Name
    max_concurrent: MaxConcurrent | None = None
    rate_numerator: RateNumerator | None = None
    rate_denominator: RateDenominator = 1
    rate_period: RatePeriod = RatePeriod.SECOND


class QueueChanges(RequestBody):
    """Changes to a queue's limits (the body of PUT and PATCH /queues/{name}).

    A field left out keeps its stored value (or, for a queue PUT creates, its default); ``null``
    clears it: no concurrency limit, no rate limit, a denominator of 1, a period of a second.
    ``name``, if given, must match the path.
    """

    name: Name | None = None
    max_concurrent: MaxConcurrent | None = Field(default=None, description="null: no limit")
    rate_numerator: RateNumerator | None = Field(default=None, description="null: no rate limit")
    rate_denominator: RateDenominator | None = Field(default=None, description="null: 1")
    rate_period: RatePeriod | None = Field(default=None, description="null: second")

    def changes(self) -> dict[str, Any]:
        """The settings this body names, with ``null`` replaced by each setting's default."""
        defaults = QueueConfig.model_fields
        return {
            field: value if value is not None else defaults[field].get_default()
            for field in sorted(self.model_fields_set - {"name"})
            for value in (getattr(self, field),)
        }


class QueueState(BaseModel):
    """What a queue holds now, by Redis time (``GET /queues/{name}/stats``)."""

    name: str
    paused: bool = Field(description="no worker starts anything from it; submits and promotions go on")
    ready: int = Field(description="tasks waiting to be claimed")
    blocked: int = Field(description="tasks waiting for a free slot of their concurrency key")
    external: int = Field(
        default=0, description="ready tasks of external types, waiting for POST /tasks/claim"
    )
    scheduled: int = Field(description="tasks waiting for their run time or a retry delay")
    running: int = Field(description="tasks started and not yet ended")
    latency_ms: int = Field(description="age of the oldest ready task (0 when none is ready)")
    completed_last_minute: int = Field(description="tasks of the queue completed in the last 60 s")
    failed_last_minute: int = Field(description="tasks of the queue failed in the last 60 s")


class QueueInfo(QueueConfig, QueueState):
    """A queue's configuration and what it holds now (an item of ``GET /queues``)."""


class QueueCleared(BaseModel):
    """What ``POST /queues/{name}/clear`` did."""

    queue: str
    cleared: int = Field(description="waiting tasks (ready, scheduled, blocked) that ended cancelled")


ROLE_QUEUES_DESCRIPTION = "the queues its workers drain, first queue first (a repeat counts once)"


class NewRole(RequestBody):
    """A role to create (the body of POST /roles)."""

    name: Name
    queues: list[Name] = Field(default_factory=list, max_length=MAX_PAGE, description=ROLE_QUEUES_DESCRIPTION)


class RoleQueues(RequestBody):
    """A role's queue list (the body of PUT /roles/{name})."""

    queues: list[Name] = Field(default_factory=list, max_length=MAX_PAGE, description=ROLE_QUEUES_DESCRIPTION)


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
    external: bool = Field(default=False, description="no worker runs it: claimed over POST /tasks/claim")


# -- external tasks -----------------------------------------------------------------------------

#: Limits of a claim: tasks per call, and the lease an outside process may ask for (1 s .. 1 day).
MAX_CLAIM = 100
MAX_LEASE_SECONDS = 86_400.0
LeaseSeconds = Annotated[BodyFloat, Field(ge=1, le=MAX_LEASE_SECONDS, description="lease length in seconds")]
LeaseToken = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Claimer = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$"),
    Field(description="who claims (shown as the task's worker_id)"),
]


ErrorType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")]


def _storable_result(value: Any) -> Any:
    # A result is stored and shown again like params, so it nests no deeper than they may.
    problem = find_problem(value, MAX_PARAMS_DEPTH)
    if problem is not None:
        context = {"message": problem.message, "where": problem.where("result")}
        raise PydanticCustomError(problem.kind, "{message} (at {where})", context)
    return value


class ClaimTasks(RequestBody):
    """Claim ready tasks of external types (``register_external_task``) of one queue under a lease."""

    queue: Name = "default"
    names: list[TaskName] = Field(
        default_factory=list,
        max_length=MAX_PAGE,
        description="task names to claim (external types); default: every external type the manager knows",
    )
    count: BodyInt = Field(default=1, ge=1, le=MAX_CLAIM, description="at most this many tasks")
    lease_seconds: LeaseSeconds = 300.0
    claimer: Claimer = "external"


class ClaimedTask(BaseModel):
    """A task handed out under a lease: send ``token`` with its heartbeat, complete and fail."""

    id: str
    name: str
    version: int
    queue: str
    params: dict[str, Any]
    priority: int
    retry_attempt: int
    submitted_at: dt.datetime | None
    token: str
    lease_seconds: float


class ClaimedTasks(BaseModel):
    """What a claim handed out (none when nothing was ready, or the queue is paused)."""

    tasks: list[ClaimedTask]


class ProgressReport(RequestBody):
    """How far a task got (as ``task.progress()`` reports it from a worker)."""

    current: BodyInt | BodyFloat = Field(ge=0, allow_inf_nan=False)
    total: BodyInt | BodyFloat | None = Field(default=None, gt=0, allow_inf_nan=False)
    message: str | None = Field(default=None, max_length=500)


class TaskHeartbeat(RequestBody):
    """Renew a claim's lease and record a heartbeat (with how far the task got, optionally)."""

    token: LeaseToken
    lease_seconds: LeaseSeconds | None = Field(default=None, description="default: the claim's lease")
    progress: ProgressReport | None = Field(
        default=None, description="shown by /task-status; a progress event at most every 5 s"
    )


class HeartbeatAnswer(BaseModel):
    """``started`` with the renewed lease, or ``cancelled`` (its cancellation was requested: stop)."""

    id: str
    status: TaskStatus
    cancel_requested: bool
    lease_seconds: float


class CompleteTask(RequestBody):
    """End a task ``completed``: with the ``token`` of its claim, or without one while it is submitted."""

    token: LeaseToken | None = None
    result: Annotated[Any, AfterValidator(_storable_result)] = Field(
        default=None, description="any JSON value, shown as the task's result"
    )


class FailTask(RequestBody):
    """Record a failed attempt: with the ``token`` of its claim, or without one while it is submitted.
    Retryable: retried under the task type's retry policy; otherwise (or out of retries) failed,
    and dead-lettered under its dead letter policy."""

    token: LeaseToken | None = None
    error: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    error_type: ErrorType = "ExternalTaskError"
    retryable: BodyBool = False


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
    """``ready`` when Redis and SQL both answer and Redis is not out of memory; otherwise the
    failing side says why (``error: ...``)."""

    status: str
    redis: str
    sql: str
