"""Recurring tasks declared in a task module, next to the task they submit.

    from jobbers import recurring, register_task  # recurring is defined here

    @register_task("nightly_report", schedule="0 3 * * *", schedule_timezone="Europe/Paris")
    async def nightly_report() -> None: ...

    recurring("cleanup-every-10-min", "cleanup", every=600, params={"older_than_days": 7})
    recurring("nightly-etl", workflow=chain(extract.s(), load.s()), cron="0 2 * * *", skip_if_running=True)

An entry may fire a workflow run (``jobbers.workflows``) instead of a task: every fire time
submits one run, whose id (and its nodes' task ids) derive from the entry's key and the fire time,
so each fire time is one run however many schedulers fire it. With ``skip_if_running`` a fire time
that finds the entry's previous run still running submits nothing (it is recorded as fired).

Declarations are stored (as ``static`` entries, beside the ones made over ``/recurring``) when a
worker or manager of the module starts; ``jobbers_scheduler`` fires them. Starting again updates
what the declaration says and keeps what an operator changed at run time (paused) and the fire
history.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any, cast

from jobbers.errors import TaskRegistrationError
from jobbers.models.queue_config import DEFAULT_QUEUE
from jobbers.models.recurring import RecurringEntry, ScheduleError, check_schedule
from jobbers.models.task import is_priority
from jobbers.state.records import encode_task_id

if TYPE_CHECKING:
    from jobbers.config_store import ConfigStore
    from jobbers.workflows import Workflow

log = logging.getLogger("jobbers.recurring")
_declared: dict[str, RecurringEntry] = {}


def workflow_json(run: Workflow, queue: str, name: str) -> dict[str, Any]:
    """A run built with ``jobbers.workflows`` as a recurring entry stores it (its nodes as
    ``POST /workflows`` takes them; a step without a queue in ``queue``)."""
    from jobbers.workflow_nodes import spec_json, specs_of

    return {"name": name, "nodes": [spec_json(s) for s in specs_of(run, queue)]}


def check_entry(entry: RecurringEntry) -> None:
    """Raise ``ScheduleError`` (naming the field) for what an entry cannot combine: a task and a
    workflow (exactly one), ``skip_if_running`` on a task entry or with ``catch_up`` (a catch-up
    fires runs that overlap by design), or a workflow node in another queue than the entry's."""
    if bool(entry.task_name) == (entry.workflow is not None):
        raise ScheduleError(
            "task_name", f"recurring entry {entry.key!r}: give exactly one of a task or a workflow"
        )
    if entry.workflow is not None and entry.params:
        raise ScheduleError("params", "an entry that fires a workflow gives params to its nodes, not its own")
    if entry.skip_if_running and entry.workflow is None:
        raise ScheduleError("skip_if_running", "skip_if_running applies to entries that fire a workflow")
    if entry.skip_if_running and entry.catch_up:
        raise ScheduleError("skip_if_running", "skip_if_running and catch_up cannot be combined")
    for node in (entry.workflow or {}).get("nodes", []):
        if node.get("queue", entry.queue) != entry.queue:
            raise ScheduleError(
                "queue",
                f"recurring entry {entry.key!r}: node {node.get('id')!r} is in queue {node.get('queue')!r}, "
                f"not the entry's queue {entry.queue!r}",
            )


def make_entry(
    key: str,
    task: str | None = None,
    *,
    workflow: Workflow | None = None,
    cron: str | None = None,
    every: float | None = None,
    timezone: str | None = None,
    params: dict[str, Any] | None = None,
    version: int = 1,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    description: str = "",
    catch_up: bool = False,
    skip_if_running: bool = False,
    workflow_name: str | None = None,
) -> RecurringEntry:
    """Recurring entry ``key`` (not stored): submit ``task`` (or a run of ``workflow``, named
    ``workflow_name``, by default the key) on the ``cron`` schedule (read in ``timezone``, UTC by
    default) or ``every`` seconds. Raises ``ValueError`` (``ScheduleError``) for an invalid
    schedule or priority, or what ``check_entry`` refuses."""
    check_schedule(cron, timezone, every)
    if not is_priority(priority):
        raise ScheduleError(
            "priority", f"recurring entry {key!r}: priority must be an integer from -100 to 100"
        )
    entry = RecurringEntry(
        key=key,
        task_name=task or "",
        task_version=version,
        params=dict(params or {}),
        queue=queue,
        priority=priority,
        description=description,
        cron=cron,
        timezone=timezone,
        every_seconds=every,
        catch_up=catch_up,
        static=True,
        workflow=workflow_json(workflow, queue, workflow_name or key) if workflow is not None else None,
        skip_if_running=skip_if_running,
    )
    check_entry(entry)
    return entry


def recurring(
    key: str,
    task: str | None = None,
    *,
    workflow: Workflow | None = None,
    cron: str | None = None,
    every: float | None = None,
    timezone: str | None = None,
    params: dict[str, Any] | None = None,
    version: int = 1,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    description: str = "",
    catch_up: bool = False,
    skip_if_running: bool = False,
    workflow_name: str | None = None,
) -> RecurringEntry:
    """Declare recurring entry ``key`` in a task module: submit ``task``, or a run of ``workflow``
    (built with ``jobbers.workflows``; ``skip_if_running`` skips a fire time while the previous
    run has not ended), on the ``cron`` schedule (5 fields, or 6 with seconds first; read in
    ``timezone``, UTC by default) or ``every`` seconds. Raises ``TaskRegistrationError`` for an
    invalid schedule, priority or combination."""
    try:
        entry = make_entry(
            key, task, workflow=workflow, cron=cron, every=every, timezone=timezone, params=params,
            version=version, queue=queue, priority=priority, description=description, catch_up=catch_up,
            skip_if_running=skip_if_running, workflow_name=workflow_name,
        )  # fmt: skip
    except ValueError as exc:
        raise TaskRegistrationError(f"recurring entry {key!r}: {exc}") from None
    _declared[key] = entry
    return entry


async def set_recurring_paused(config: ConfigStore, key: str, paused: bool) -> RecurringEntry | None:
    """Pause or resume entry ``key`` (None when there is none). Resuming skips the fire times
    missed while paused: the entry fires from its next fire time on."""
    entry = await config.get_recurring(key)
    if entry is None or entry.paused == paused:
        return entry
    if not paused:
        await config.record_fired(key, int(time.time() * 1000))
    return await config.set_recurring_paused(key, paused)


def declared_recurring() -> list[RecurringEntry]:
    """Every entry declared by the task modules imported so far, by key."""
    return [_declared[k] for k in sorted(_declared)]


def recurring_task_id(key: str, fire_ms: int) -> str:
    """The id of the task entry ``key`` submits for fire time ``fire_ms``: a ULID whose time is the
    fire time and whose random part is a hash of both, so every scheduler that fires the same
    (key, fire time) submits the same task, and the submit of it happens once."""
    digest = hashlib.blake2b(f"{key}\0{fire_ms}".encode(), digest_size=10).digest()
    return encode_task_id((fire_ms << 80) | int.from_bytes(digest, "big"))


def recurring_node_task_id(key: str, fire_ms: int, node: str) -> str:
    """The task id of node ``node`` of the run entry ``key`` fires at ``fire_ms`` (the run's own id
    is ``recurring_task_id(key, fire_ms)``): derived the same way, so every scheduler makes the same."""
    digest = hashlib.blake2b(f"{key}\0{fire_ms}\0{node}".encode(), digest_size=10).digest()
    return encode_task_id((fire_ms << 80) | int.from_bytes(digest, "big"))


def entry_task_names(entry: RecurringEntry) -> list[tuple[str, int]]:
    """The (name, version) of every task ``entry`` submits: its task, or its workflow's nodes'."""
    if entry.workflow is None:
        return [(entry.task_name, entry.task_version)]
    nodes = cast("list[dict[str, Any]]", entry.workflow.get("nodes", []))
    return [(n["name"], n.get("version", 1)) for n in nodes]


async def store_declared_recurring(config: ConfigStore) -> int:
    """Store the declared entries (see the module docstring); returns how many were stored.

    An entry whose queue does not exist, or whose task this process has not registered, is
    skipped with a warning naming what is missing.
    """
    from jobbers.errors import QueueNotFoundError
    from jobbers.registry import find_task_config

    stored = 0
    for entry in declared_recurring():
        missing = [(n, v) for n, v in entry_task_names(entry) if find_task_config(n, v) is None]
        if missing:
            log.warning(
                "recurring %s: task %s version %d is not registered; not stored",
                entry.key,
                missing[0][0],
                missing[0][1],
            )
            continue
        existing = await config.get_recurring(entry.key)
        if existing is not None:
            entry = entry.with_changes(
                paused=existing.paused,
                created_at_ms=existing.created_at_ms,
                last_fire_ms=existing.last_fire_ms,
            )
        else:
            entry = entry.with_changes(created_at_ms=int(time.time() * 1000))
        try:
            await config.save_recurring(entry)
        except QueueNotFoundError as exc:
            log.warning("recurring %s: %s; not stored", entry.key, exc)
            continue
        stored += 1
    return stored
