"""Recurring tasks declared in a task module, next to the task they submit.

    from jobbers import recurring, register_task  # recurring is defined here

    @register_task("nightly_report", schedule="0 3 * * *", schedule_timezone="Europe/Paris")
    async def nightly_report() -> None: ...

    recurring("cleanup-every-10-min", "cleanup", every=600, params={"older_than_days": 7})

Declarations are stored (as ``static`` entries, beside the ones made over ``/recurring``) when a
worker or manager of the module starts; ``jobbers_scheduler`` fires them. Starting again updates
what the declaration says and keeps what an operator changed at run time (paused) and the fire
history.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from jobbers.errors import TaskRegistrationError
from jobbers.models.queue_config import DEFAULT_QUEUE
from jobbers.models.recurring import RecurringEntry, ScheduleError, check_schedule
from jobbers.models.task import is_priority
from jobbers.state.records import encode_task_id

if TYPE_CHECKING:
    from jobbers.config_store import ConfigStore

log = logging.getLogger("jobbers.recurring")
_declared: dict[str, RecurringEntry] = {}


def make_entry(
    key: str,
    task: str,
    *,
    cron: str | None = None,
    every: float | None = None,
    timezone: str | None = None,
    params: dict[str, Any] | None = None,
    version: int = 1,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    description: str = "",
    catch_up: bool = False,
) -> RecurringEntry:
    """Recurring entry ``key`` (not stored): submit ``task`` on the ``cron`` schedule (read in
    ``timezone``, UTC by default) or ``every`` seconds. Raises ``ValueError`` (``ScheduleError``)
    for an invalid schedule or priority."""
    check_schedule(cron, timezone, every)
    if not is_priority(priority):
        raise ScheduleError(
            "priority", f"recurring entry {key!r}: priority must be an integer from -100 to 100"
        )
    entry = RecurringEntry(
        key=key,
        task_name=task,
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
    )
    return entry


def recurring(
    key: str,
    task: str,
    *,
    cron: str | None = None,
    every: float | None = None,
    timezone: str | None = None,
    params: dict[str, Any] | None = None,
    version: int = 1,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    description: str = "",
    catch_up: bool = False,
) -> RecurringEntry:
    """Declare recurring entry ``key`` in a task module: submit ``task`` on the ``cron`` schedule
    (5 fields, or 6 with seconds first; read in ``timezone``, UTC by default) or ``every``
    seconds. Raises ``TaskRegistrationError`` for an invalid schedule or priority."""
    try:
        entry = make_entry(
            key, task, cron=cron, every=every, timezone=timezone, params=params, version=version,
            queue=queue, priority=priority, description=description, catch_up=catch_up,
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


async def store_declared_recurring(config: ConfigStore) -> int:
    """Store the declared entries (see the module docstring); returns how many were stored.

    An entry whose queue does not exist, or whose task this process has not registered, is
    skipped with a warning naming what is missing.
    """
    from jobbers.errors import QueueNotFoundError
    from jobbers.registry import find_task_config

    stored = 0
    for entry in declared_recurring():
        if find_task_config(entry.task_name, entry.task_version) is None:
            log.warning(
                "recurring %s: task %s version %d is not registered; not stored",
                entry.key,
                entry.task_name,
                entry.task_version,
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
