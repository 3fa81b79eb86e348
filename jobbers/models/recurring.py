"""Recurring entries (a task, or a workflow run, submitted on a schedule) and their schedules.

A schedule is a cron expression (5 fields, or 6 with seconds as the first field, as in BullMQ
and Quartz; parsed by ``croniter``) read in an IANA timezone (UTC by default), or a plain
interval of ``every_seconds`` counted from the entry's creation. Fire times are milliseconds since the epoch.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from jobbers.models.queue_config import DEFAULT_QUEUE

if TYPE_CHECKING:
    from croniter import croniter

#: How many missed fire times an entry with ``catch_up`` enqueues after downtime, at most.
MAX_CATCH_UP = 1000


def _croniter() -> type[croniter]:
    """``croniter``, imported on first use: a worker whose tasks declare no cron entry never needs it."""
    from croniter import croniter

    return croniter


class ScheduleError(ValueError):
    """A schedule that cannot be used: the message says which part and why."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


@dataclass(frozen=True)
class RecurringEntry:
    """One recurring entry: what to submit (a task, or a workflow run when ``workflow`` is set), and when."""

    key: str
    #: The task it submits ("" for an entry that fires a workflow).
    task_name: str
    task_version: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    description: str = ""
    cron: str | None = None
    timezone: str | None = None
    every_seconds: float | None = None
    #: After downtime, enqueue every missed fire time (at most ``MAX_CATCH_UP``), not only the last.
    catch_up: bool = False
    paused: bool = False
    #: Declared in a task module (``recurring(...)``) rather than created over the API.
    static: bool = False
    created_at_ms: int = 0
    #: The latest fire time already enqueued (None: never fired).
    last_fire_ms: int | None = None
    #: The workflow run it fires instead of a task: ``{"name": ..., "nodes": [...]}``, each node as
    #: ``POST /workflows`` takes it (see ``jobbers.workflow_nodes.node_spec``), all in ``queue``.
    workflow: dict[str, Any] | None = None
    #: A workflow entry only: a fire time that finds the entry's previous run still running is
    #: skipped (recorded as fired, no run submitted).
    skip_if_running: bool = False

    def with_changes(self, **changes: Any) -> RecurringEntry:
        return replace(self, **changes)


def check_schedule(cron: str | None, timezone: str | None, every_seconds: float | None) -> None:
    """Raise ``ScheduleError`` unless exactly one of cron / every is given and it is valid."""
    if (cron is None) == (every_seconds is None):
        raise ScheduleError("cron", "give exactly one of cron (a cron expression) or every (seconds)")
    if every_seconds is not None:
        if timezone is not None:
            raise ScheduleError("timezone", "a timezone applies to cron schedules only")
        if not every_seconds >= 1:
            raise ScheduleError("every", "every must be at least 1 second")
        return
    assert cron is not None
    fields = cron.split()
    if len(fields) not in (5, 6) or not _croniter().is_valid(cron, second_at_beginning=True):
        raise ScheduleError(
            "cron", f"{cron!r} is not a cron expression (5 fields, or 6 with seconds first)"
        )
    _zone(timezone)


def _zone(timezone: str | None) -> dt.tzinfo:
    if timezone is None:
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"{timezone!r} is not an IANA timezone (e.g. Europe/Paris)") from None


def fire_times_after(
    entry: RecurringEntry, after_ms: int, count: int, until_ms: int | None = None
) -> list[int]:
    """Up to ``count`` fire times strictly after ``after_ms`` (and at or before ``until_ms``)."""
    out: list[int] = []
    if entry.every_seconds is not None:
        step = int(entry.every_seconds * 1000)
        k = max(1, (after_ms - entry.created_at_ms) // step + 1)
        while len(out) < count:
            at = entry.created_at_ms + k * step
            if until_ms is not None and at > until_ms:
                break
            if at > after_ms:
                out.append(at)
            k += 1
        return out
    assert entry.cron is not None
    start = dt.datetime.fromtimestamp(after_ms / 1000, tz=dt.UTC).astimezone(_zone(entry.timezone))
    schedule = _croniter()(entry.cron, start, second_at_beginning=True)
    while len(out) < count:
        at = int(schedule.get_next(float) * 1000)
        if until_ms is not None and at > until_ms:
            break
        if at > after_ms:
            out.append(at)
    return out


def due_fire_times(entry: RecurringEntry, now_ms: int) -> list[int]:
    """The fire times to enqueue now: every missed one with ``catch_up`` (at most
    ``MAX_CATCH_UP``, the latest ones), else only the latest (a missed schedule fires once)."""
    after = entry.last_fire_ms if entry.last_fire_ms is not None else entry.created_at_ms
    if entry.catch_up:
        due = fire_times_after(entry, after, MAX_CATCH_UP, until_ms=now_ms)
        if len(due) == MAX_CATCH_UP:  # more were missed than are caught up: keep the latest ones
            latest = _latest_at_or_before(entry, now_ms)
            due = fire_times_after(entry, max(after, latest - 1), 1, until_ms=now_ms)
            while len(due) < MAX_CATCH_UP and due[0] > after:
                earlier = _latest_at_or_before(entry, due[0] - 1)
                if earlier <= after:
                    break
                due.insert(0, earlier)
        return due
    latest = _latest_at_or_before(entry, now_ms)
    return [latest] if latest > after else []


def _latest_at_or_before(entry: RecurringEntry, at_ms: int) -> int:
    """The latest fire time at or before ``at_ms`` (-1 when there is none)."""
    if entry.every_seconds is not None:
        step = int(entry.every_seconds * 1000)
        k = (at_ms - entry.created_at_ms) // step
        return entry.created_at_ms + k * step if k >= 1 else -1
    assert entry.cron is not None
    # get_prev is strictly before its start: start one millisecond after at_ms.
    start = dt.datetime.fromtimestamp((at_ms + 1) / 1000, tz=dt.UTC).astimezone(_zone(entry.timezone))
    return int(_croniter()(entry.cron, start, second_at_beginning=True).get_prev(float) * 1000)


def next_fire_times(entry: RecurringEntry, now_ms: int, count: int = 5) -> list[int]:
    """The next ``count`` fire times after now (and after the last one enqueued)."""
    after = max(now_ms, entry.last_fire_ms or 0)
    return fire_times_after(entry, after, count)


def ms_datetime(ms: int) -> dt.datetime:
    """A fire time (ms since the epoch) as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
