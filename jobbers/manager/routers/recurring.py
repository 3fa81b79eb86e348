"""Recurring entries: tasks (or workflow runs) the scheduler submits on a cron schedule or an
interval (stored in SQL)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from jobbers.config_store import queue_not_found
from jobbers.errors import ConfigExistsError, ConfigNotFoundError, InvalidParamsError, UnknownTaskError
from jobbers.manager.deps import ServicesDep
from jobbers.manager.errors import Loc, RequestErrors
from jobbers.manager.params import CONFLICT, NOT_FOUND, UNAVAILABLE
from jobbers.manager.recurring_schemas import NewRecurring, RecurringInfo, RecurringKey, RecurringSpec
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.models.recurring import (
    RecurringEntry,
    ScheduleError,
    check_schedule,
    ms_datetime,
    next_fire_times,
)
from jobbers.recurring_entries import check_entry, set_recurring_paused
from jobbers.registry import get_task_config, validate_params
from jobbers.workflow_nodes import WorkflowProblems, build_nodes, node_spec

router = APIRouter(tags=["recurring"], route_class=StrictJSONRoute)


def info(entry: RecurringEntry, now_ms: int | None = None) -> RecurringInfo:
    """The API form of an entry, with its next five fire times (none while paused)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    nexts = [] if entry.paused else next_fire_times(entry, now)
    last = ms_datetime(entry.last_fire_ms) if entry.last_fire_ms is not None else None
    return RecurringInfo(
        key=entry.key,
        task_name=entry.task_name or None,
        task_version=entry.task_version,
        params=entry.params,
        workflow=entry.workflow,
        skip_if_running=entry.skip_if_running,
        queue=entry.queue,
        priority=entry.priority,
        description=entry.description,
        cron=entry.cron,
        timezone=entry.timezone,
        every=entry.every_seconds,
        catch_up=entry.catch_up,
        paused=entry.paused,
        static=entry.static,
        created_at=ms_datetime(entry.created_at_ms),
        last_fired_at=last,
        next_runs=[ms_datetime(t) for t in nexts],
    )


async def _checked(
    key: str, spec: RecurringSpec, services: ServicesDep, created_at_ms: int
) -> RecurringEntry:
    """The entry ``spec`` describes, or a 422 naming every field that is wrong (for a workflow,
    each node at fault, as ``POST /workflows`` does)."""
    errors: list[tuple[Loc, Exception]] = []
    workflow = None
    if spec.workflow is None and spec.task_name is not None:
        try:
            config = get_task_config(spec.task_name, spec.task_version)
        except UnknownTaskError as exc:
            errors.append((("body", "task_name"), exc))
        else:
            try:
                validate_params(config, spec.params)
            except InvalidParamsError as exc:
                errors.append((("body", "params"), exc))
    elif spec.workflow is not None:
        nodes = []
        for i, n in enumerate(spec.workflow.nodes):
            node = n.model_dump()
            if "queue" not in n.model_fields_set:
                node["queue"] = spec.queue
            elif n.queue != spec.queue:
                errors.append((("body", "workflow", "nodes", i, "queue"), InvalidParamsError(
                    f"node {n.id!r}: a recurring workflow's nodes run in the entry's queue {spec.queue!r}"
                )))  # fmt: skip
            nodes.append(node)
        workflow = {"name": spec.workflow.name, "nodes": nodes}
        try:
            await build_nodes(
                "checked",
                [node_spec(n) for n in nodes],
                require_registered=True,
                queue_exists=services.queues.exists,
            )
        except WorkflowProblems as problems:
            errors += [(("body", "workflow", "nodes", p.index, p.field), p.error) for p in problems.problems]
    try:
        check_schedule(spec.cron, spec.timezone, spec.every)
    except ScheduleError as exc:
        errors.append((("body", exc.field_name), InvalidParamsError(str(exc))))
    if not await services.queues.exists(spec.queue):
        errors.append((("body", "queue"), queue_not_found(spec.queue)))
    entry = RecurringEntry(
        key=key,
        task_name=spec.task_name or "",
        task_version=spec.task_version,
        params=spec.params,
        queue=spec.queue,
        priority=spec.priority,
        description=spec.description,
        cron=spec.cron,
        timezone=spec.timezone,
        every_seconds=spec.every,
        catch_up=spec.catch_up,
        paused=spec.paused,
        created_at_ms=created_at_ms,
        workflow=workflow,
        skip_if_running=spec.skip_if_running,
    )
    try:
        check_entry(entry)
    except ScheduleError as exc:
        loc = "workflow" if exc.field_name == "task_name" and spec.workflow is not None else exc.field_name
        if not (exc.field_name == "queue" and errors):  # a node's queue is named above already
            errors.append((("body", loc), InvalidParamsError(str(exc))))
    if errors:
        raise RequestErrors(errors)  # type: ignore[arg-type]
    return entry


@router.get("/recurring", responses=UNAVAILABLE)
async def list_recurring(services: ServicesDep) -> list[RecurringInfo]:
    """Every recurring entry, by key, with its next fire times."""
    now = int(time.time() * 1000)
    return [info(e, now) for e in await services.config.list_recurring()]


@router.post("/recurring", status_code=201, responses={**CONFLICT, **UNAVAILABLE})
async def create_recurring(body: NewRecurring, services: ServicesDep) -> RecurringInfo:
    """Create a recurring entry (409 if the key exists; 422 for an unknown task, params the task
    does not take, an invalid cron expression or timezone, a missing queue, a workflow that
    ``POST /workflows`` would refuse (naming the node), both a task and a workflow or neither,
    or ``skip_if_running`` on a task entry or with ``catch_up``)."""
    if await services.config.get_recurring(body.key) is not None:
        raise ConfigExistsError(
            f"recurring entry {body.key!r} exists already; PUT /recurring/{body.key} changes it"
        )
    entry = await _checked(body.key, body, services, int(time.time() * 1000))
    await services.config.save_recurring(entry)
    return info(entry)


@router.get("/recurring/{key}", responses={**NOT_FOUND, **UNAVAILABLE})
async def get_recurring(key: RecurringKey, services: ServicesDep) -> RecurringInfo:
    """One recurring entry, with its next fire times."""
    entry = await services.config.get_recurring(key)
    if entry is None:
        raise ConfigNotFoundError(f"no recurring entry {key!r}")
    return info(entry)


@router.put(
    "/recurring/{key}",
    responses={201: {"model": RecurringInfo, "description": "the entry was created"}, **UNAVAILABLE},
)
async def put_recurring(
    key: RecurringKey, body: RecurringSpec, services: ServicesDep, response: Response
) -> RecurringInfo:
    """Replace a recurring entry, creating it if needed. Its fire history stays: a changed schedule
    fires from the next fire time after the last one enqueued."""
    existing = await services.config.get_recurring(key)
    created_at = existing.created_at_ms if existing else int(time.time() * 1000)
    entry = await _checked(key, body, services, created_at)
    if existing is not None:
        entry = entry.with_changes(last_fire_ms=existing.last_fire_ms)
    if await services.config.save_recurring(entry):
        response.status_code = 201
    return info(entry)


@router.delete("/recurring/{key}", status_code=204, responses={**NOT_FOUND, **UNAVAILABLE})
async def delete_recurring(key: RecurringKey, services: ServicesDep) -> None:
    """Delete a recurring entry; tasks it already submitted are not touched. An entry declared in a
    task module comes back when a worker of that module starts."""
    if not await services.config.delete_recurring(key):
        raise ConfigNotFoundError(f"no recurring entry {key!r}")


@router.post("/recurring/{key}/pause", responses={**NOT_FOUND, **UNAVAILABLE})
async def pause_recurring(key: RecurringKey, services: ServicesDep) -> RecurringInfo:
    """Stop firing the entry until it is resumed (fire times passed meanwhile are skipped)."""
    return await _set_paused(key, True, services)


@router.post("/recurring/{key}/resume", responses={**NOT_FOUND, **UNAVAILABLE})
async def resume_recurring(key: RecurringKey, services: ServicesDep) -> RecurringInfo:
    """Fire the entry again from its next fire time."""
    return await _set_paused(key, False, services)


async def _set_paused(key: str, paused: bool, services: ServicesDep) -> RecurringInfo:
    entry = await set_recurring_paused(services.config, key, paused)
    if entry is None:
        raise ConfigNotFoundError(f"no recurring entry {key!r}")
    return info(entry)
