"""Request and response bodies of the recurring entry routes (``/recurring``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from jobbers.manager.schemas import (
    MAX_BULK_TASKS,
    BodyBool,
    BodyFloat,
    BodyInt,
    Name,
    Params,
    RequestBody,
    TaskName,
)
from jobbers.manager.workflow_schemas import WorkflowNodeSpec
from jobbers.models.task import MAX_PRIORITY, MIN_PRIORITY

RecurringKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")]


class RecurringWorkflow(RequestBody):
    """The workflow run an entry fires: its nodes as ``POST /workflows`` takes them, all in the
    entry's queue (a node that names no queue runs there)."""

    nodes: list[WorkflowNodeSpec] = Field(min_length=1, max_length=MAX_BULK_TASKS)
    name: str = Field(default="", max_length=200, description="the runs' label (by default the entry's key)")


class RecurringSpec(RequestBody):
    """What a recurring entry submits, and when (the body of PUT /recurring/{key}): a task
    (``task_name``, ``params`` ...) or a workflow run (``workflow``). Give ``cron`` (5 fields, or 6
    with seconds first; read in ``timezone``, UTC by default) or ``every`` (seconds, counted from
    the entry's creation)."""

    task_name: TaskName | None = Field(default=None, description="the task it submits (or give workflow)")
    task_version: BodyInt = Field(default=1, ge=1, le=2**31 - 1)
    params: Params = Field(default_factory=dict)
    workflow: RecurringWorkflow | None = Field(
        default=None, description="a workflow run to fire instead of a task (one run per fire time)"
    )
    skip_if_running: BodyBool = Field(
        default=False,
        description="a workflow entry: skip a fire time while the entry's previous run is still running",
    )
    queue: Name = "default"
    priority: BodyInt = Field(default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    description: str = Field(default="", max_length=2000)
    cron: str | None = Field(default=None, max_length=200, examples=["*/5 * * * *"])
    timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Paris"])
    every: BodyFloat | None = Field(default=None, ge=1, le=366 * 86400, description="seconds between runs")
    catch_up: BodyBool = Field(
        default=False,
        description="after downtime, enqueue every missed fire time (at most 1,000), not only the latest",
    )
    paused: BodyBool = False


class NewRecurring(RecurringSpec):
    """A recurring entry to create (the body of POST /recurring)."""

    key: RecurringKey


class RecurringInfo(BaseModel):
    """A recurring entry with its next fire times."""

    key: str
    task_name: str | None = Field(description="the task it submits; null for an entry that fires a workflow")
    task_version: int
    params: dict[str, Any]
    workflow: dict[str, Any] | None = Field(description="the workflow run it fires: its name and nodes")
    skip_if_running: bool
    queue: str
    priority: int
    description: str
    cron: str | None
    timezone: str | None
    every: float | None
    catch_up: bool
    paused: bool
    static: bool = Field(description="declared in a task module (recurring(...)) rather than over the API")
    created_at: dt.datetime
    last_fired_at: dt.datetime | None = Field(description="the latest fire time already enqueued")
    next_runs: list[dt.datetime] = Field(description="the next five fire times (none while paused)")
